"""What holds a worker's jobs: an operator's pause or resume (imagegen.control, read whole from its
start by every worker, so a pause outlives worker restarts) and peak hours (PEAK_HOURS). The worker
pauses the partitions of held topics, so their jobs wait in the broker, not in the worker."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import messages as m
from streams import topics
from streams.peak import PeakHours

log = logging.getLogger(__name__)


class QueueControls:
    def __init__(self, peak: PeakHours) -> None:
        self.peak = peak
        self.paused: dict[str, bool] = {}  # family or ALL_FAMILIES -> the last word said
        self.ready = asyncio.Event()  # set once the control topic is read to its end

    def apply(self, control: m.QueueControl) -> None:
        self.paused[control.family] = control.paused

    def held(self, family: str, dx: bool, now: datetime) -> str | None:
        """Why `family`'s normal (or DX) jobs must wait now, or None."""
        if not self.ready.is_set():
            return "reading the queue's pauses"
        if self.paused.get(m.ALL_FAMILIES) or self.paused.get(family):
            return "paused"
        if not dx and self.peak.covers(now):
            return f"peak hours ({self.peak})"
        return None

    async def wait_free(self, family: str, dx: bool) -> None:
        while self.held(family, dx, m.utcnow()):
            await asyncio.sleep(0.25)

    async def follow(self, bootstrap_servers: str) -> None:
        """Read the control topic from its start, then follow it."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100
        )
        await consumer.start()
        try:
            tp = TopicPartition(topics.CONTROL, 0)
            while not consumer.partitions_for_topic(topics.CONTROL):
                await consumer.topics()  # the topic may not exist yet
                await asyncio.sleep(0.2)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while True:
                for records in (await consumer.getmany(tp, timeout_ms=200)).values():
                    for record in records:
                        try:
                            self.apply(m.decode_control(record.value))
                        except m.UndecodableMessage as exc:
                            log.warning("ignoring a control message at offset %d: %s", record.offset, exc)
                if not self.ready.is_set() and await consumer.position(tp) >= end:
                    log.info("queue pauses read: %s", {k: v for k, v in self.paused.items() if v} or "none")
                    self.ready.set()
        finally:
            await consumer.stop()
