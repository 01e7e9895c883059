"""What holds a worker's jobs: an operator's pause or resume (imagegen.control, read whole from its
start by every worker, so a pause outlives worker restarts) and peak hours (PEAK_HOURS). The worker
pauses the partitions of held topics, so their jobs wait in the broker, not in the worker.

The control topic also carries cancelled rounds (VariationCancelled, sent there by the variations
agent): a worker skips their jobs, and stops one it is drawing at its next denoising step."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import clients, codec, operational, topics
from streams import messages as m
from streams.peak import PeakHours

log = logging.getLogger(__name__)
WORKERS_GROUP = "imagegen"  # the Faust app's id: the workers' consumer group


class QueueControls:
    def __init__(self, peak: PeakHours) -> None:
        self.peak = peak
        self.paused: dict[str, bool] = {}  # family or ALL_FAMILIES -> the last word said
        self.cancelled: dict[uuid.UUID, int] = {}  # variation id -> its last cancelled round
        self.ready = asyncio.Event()  # set once the control topic is read to its end
        self.stopping = False  # the worker is stopping: it takes no new job

    def apply(self, control: operational.QueueControl | m.VariationCancelled) -> None:
        match control:
            case operational.QueueControl():
                self.paused[control.family] = control.paused
            case m.VariationCancelled():
                self.cancelled[control.variation_id] = max(control.round, self.cancelled.get(control.variation_id, 0))

    def is_cancelled(self, job: m.GenerateFamily) -> bool:
        """Whether `job`'s round was cancelled (safe to ask from the drawing thread)."""
        return job.round <= self.cancelled.get(job.variation_id, 0)

    def held(self, family: str, dx: bool, now: datetime) -> str | None:
        """Why `family`'s normal (or DX) jobs must wait now, or None."""
        if self.stopping:
            return "the worker is stopping"
        if not self.ready.is_set():
            return "reading the queue's pauses"
        if self.paused.get(operational.ALL_FAMILIES) or self.paused.get(family):
            return "paused"
        if not dx and self.peak.covers(now):
            return f"peak hours ({self.peak})"
        return None

    async def wait_free(self, family: str, dx: bool) -> None:
        while self.held(family, dx, m.utcnow()):
            await asyncio.sleep(0.25)

    async def follow(self, bootstrap_servers: str) -> None:
        """Read the control topic from its start, then follow it."""
        consumer = clients.reader(bootstrap_servers)
        await consumer.start()
        try:
            tp = TopicPartition(topics.CONTROL, 0)
            await clients.partitions(consumer, topics.CONTROL, timeout=float("inf"))  # it may not exist yet
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while True:
                for records in (await consumer.getmany(tp, timeout_ms=200)).values():
                    for record in records:
                        try:
                            self.apply(codec.decode_control(record.value))
                        except codec.UndecodableMessage as exc:
                            log.warning("ignoring a control message at offset %d: %s", record.offset, exc)
                if not self.ready.is_set() and await consumer.position(tp) >= end:
                    log.info("queue pauses read: %s", {k: v for k, v in self.paused.items() if v} or "none")
                    self.ready.set()
        finally:
            await consumer.stop()


async def paused_now(bootstrap_servers: str) -> dict[str, bool]:
    """The pauses in force (family or ALL_FAMILIES -> paused), read from the control topic once."""
    controls = QueueControls(PeakHours())
    following = asyncio.create_task(controls.follow(bootstrap_servers))
    ready = asyncio.create_task(controls.ready.wait())
    try:
        await asyncio.wait({following, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if following.done():
            following.result()  # it failed: say why (an unreachable broker)
        if not ready.done():
            raise TimeoutError("the control topic was not read within 30 s")
    finally:
        ready.cancel()
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
    return {family: True for family, paused in controls.paused.items() if paused}


async def waiting_jobs(bootstrap_servers: str, families: Iterable[str]) -> dict[tuple[str, str], int]:
    """Jobs posted and not yet taken by the workers' group, per (family, "normal" or "dx")."""
    names = {topics.family(f, p): (f, "dx" if p else "normal") for f in families for p in (False, True)}
    # in the workers' group but never subscribed (so never joining it): it reads the group's commits
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=WORKERS_GROUP, enable_auto_commit=False, request_timeout_ms=3000
    )
    try:
        await consumer.start()
        try:
            partitions = await clients.partitions(consumer, *names, timeout=3.0)
        except clients.TopicMissing:  # topics not made yet wait no job
            partitions = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        committed = {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()
    waiting = dict.fromkeys(names.values(), 0)
    for tp, end in ends.items():
        waiting[names[tp.topic]] += max(0, end - (committed.get(tp) or 0))
    return waiting
