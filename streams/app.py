"""The Faust app: the variations agent (the aggregate) and one family agent per family, made by one
factory over the family table. Agents are thin: decode, call the domain or the job, send keyed by
variation id. Undecodable messages go to the dead-letter topic; a consumer never crashes on input."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import faust

from imagegen import logs
from imagegen.config import Settings
from imagegen.storage import StorageError, open_storage
from streams import clients, codec, domain, domain_events, kafka, operational, topics
from streams import messages as m
from streams.control import QueueControls
from streams.families import FamilyTable
from streams.jobs import FamilyJobs, Released, Report, batches, cancelled_job

log = logging.getLogger(__name__)


def create_app(settings: Settings, table: FamilyTable, families: tuple[str, ...]) -> faust.App:
    app = kafka.App(
        "imagegen",
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        processing_guarantee=settings.processing_guarantee,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        broker_request_timeout=max(40.0, settings.kafka_session_timeout_s * 2),
        broker_rebalance_timeout=max(2.0, settings.kafka_session_timeout_s),
        # A worker taking over partitions recovers their table rows half a second after the rebalance
        # (Faust's 3 s default waits out rebalance storms that a group of a few workers does not have).
        stream_recovery_delay=0.5,
        # Jobs take seconds to minutes; never let a long drawing look like a dead consumer.
        broker_max_poll_interval=3600.0,
        # Nor hold a rebalance until a drawing ends: the job in flight is redelivered to the new
        # owner and redrawn, giving the same event ids, which every consumer drops.
        stream_wait_empty=False,
        # No standby replicas: a worker that takes over partitions rebuilds their table rows from the
        # changelog (a few records per variation), which costs less than keeping every row twice.
        table_standby_replicas=0,
    )
    dead_letter = app.topic(topics.DEAD_LETTER)

    async def to_dead_letter(event: faust.EventT, reason: str) -> None:
        msg = event.message
        log.warning("dead-lettering %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason)
        # acknowledged before the input's offset may be committed: a dead letter is never lost
        sent = await dead_letter.send(
            key=msg.key,
            value=msg.value,
            headers={
                "reason": reason.encode(),
                "topic": msg.topic.encode(),
                "partition": str(msg.partition).encode(),
                "offset": str(msg.offset).encode(),
            },
        )
        await sent

    async def send(message: m.Message | domain_events.DomainEvent) -> None:
        # Wait for the broker's acknowledgement: an input is only recorded as handled (table write,
        # offset commit) once everything it caused is safely in the log.
        for name in topics.route(message):
            await (await app.send(name, key=message.key, value=codec.encode(message)))

    async def decoded(stream: faust.StreamT[Any], decode: Any) -> AsyncIterator[Any]:
        """The stream's messages, decoded; one that cannot be decoded goes to the dead-letter topic."""
        async for event in stream.events():
            try:
                message = decode(event.value)
            except codec.UndecodableMessage as exc:
                await to_dead_letter(event, str(exc))
                continue
            yield message

    policy = settings.brand
    variations = app.Table("variations", default=None, key_type=bytes, value_type=bytes)

    @app.agent(app.topic(topics.COMMANDS, topics.EVENTS), name="variations")
    async def variations_agent(stream: faust.StreamT[Any]) -> None:
        async for message in decoded(stream, codec.decode_any):
            key = message.key
            stored = variations.get(key)
            state = domain.Variation.model_validate_json(stored) if stored else None
            new, out, announced = domain.step(state, message, m.utcnow(), table.names, policy)
            # Send first, then record: a crash in between redelivers the input, and the same
            # decisions come out again with the same ids, which every consumer drops.
            for msg in [*out, *announced]:
                await send(msg)
            if new is not None and new != state:
                variations[key] = new.model_dump_json().encode()

    storage = open_storage(settings)
    jobs = FamilyJobs(settings, table, storage)

    @app.task
    async def open_storage_at_start() -> None:
        """Make the S3 client and check the bucket now, so that a bad setting shows in the log at start;
        a storage the first job finds closed is opened then."""
        try:
            await storage.open()
        except StorageError as exc:
            log.error("image storage does not answer: %s", exc)

    @app.on_before_shutdown.connect
    async def close_storage(app: faust.App, **kwargs: Any) -> None:
        await storage.close()  # after the consumer stopped: no job is storing

    @app.task
    async def load_default_model() -> None:
        """Load the default model before the first job asks for it (jobs queue behind this)."""
        try:
            await asyncio.get_running_loop().run_in_executor(jobs.executor, jobs.pipelines.get, settings.default_model)
            log.info("default model %s loaded", settings.default_model)
        except Exception as exc:  # a worker without those weights still serves other models
            log.warning("default model %s not loaded: %s", settings.default_model, exc)
        await heartbeat()

    @app.timer(interval=settings.heartbeat_interval_s)
    async def heartbeat() -> None:
        beat = jobs.heartbeat(families)
        await app.send(topics.WORKERS, key=beat.key, value=codec.encode(beat))

    controls = QueueControls(settings.peak)
    steps: asyncio.Queue[operational.FamilyProgress] = asyncio.Queue(maxsize=10_000)

    def report(progress: operational.FamilyProgress) -> None:
        """A denoising step done, from the drawing thread by way of the loop; sent in order."""
        with contextlib.suppress(asyncio.QueueFull):  # live status only: never hold a drawing up
            steps.put_nowait(progress)

    @app.task
    async def send_progress() -> None:
        """Steps go out on a producer of their own, never waited for: live status must never hold up, or
        share a buffer with, the sends the event log depends on."""
        producer = clients.producer(settings.kafka_bootstrap_servers, acks=1, linger_ms=20, enable_idempotence=False)
        await producer.start()
        try:
            while True:
                progress = await steps.get()
                try:
                    await producer.send(topics.PROGRESS, key=progress.key, value=codec.encode(progress))
                except Exception as exc:
                    log.debug("progress not sent: %s", exc)
        finally:
            await producer.stop()

    @app.task
    async def follow_queue_controls() -> None:
        await controls.follow(settings.kafka_bootstrap_servers)

    held_now: dict[str, str | None] = {}
    paused_by_us: set[Any] = set()  # resume only these: Faust pauses partitions of its own (recovery)

    @app.timer(interval=1.0)
    async def hold_partitions() -> None:
        """Pause the partitions of held work topics, the Kafka way: their jobs wait in the broker."""
        served = table.subset(families)
        try:
            assigned = app.consumer.assignment()
        except Exception as exc:  # between assignments (a rebalance): the next tick pauses them
            log.debug("no assignment to hold yet: %s", exc)
            return
        for family in served:
            for dx in (False, True):
                topic = topics.family(family.name, priority=dx)
                why = controls.held(family.name, dx, m.utcnow())
                tps = [tp for tp in assigned if tp.topic == topic]
                if why:
                    app.consumer.pause_partitions(tps)
                    paused_by_us.update(tps)
                elif ours := [tp for tp in paused_by_us if tp.topic == topic]:
                    app.consumer.resume_partitions(ours)
                    paused_by_us.difference_update(ours)
                if held_now.get(topic) != why:
                    log.info("%s: %s", topic, f"held: {why}" if why else "taken")
                    held_now[topic] = why

    for family in table.subset(families):
        _family_agent(app, family.name, jobs, send, to_dead_letter, controls, report)
    app.drain = functools.partial(_drain, jobs, controls, settings.shutdown_grace_s)  # for StoppingWorker
    return app


async def _drain(jobs: FamilyJobs, controls: QueueControls, grace_s: float) -> None:
    """Take no new job, let the take in flight finish for `grace_s`, then release it at its next step."""
    controls.stopping = True
    if await jobs.wait_idle(0):
        return
    log.info("stopping: finishing the job in flight (up to %.0f s)", grace_s)
    if await jobs.wait_idle(grace_s):
        log.info("stopping: the job in flight finished")
        return
    log.warning("stopping: releasing the job in flight at its next step; another worker will draw it")
    jobs.releasing.set()
    await jobs.wait_idle(60.0)


class StoppingWorker(faust.Worker):
    """Faust's worker, which on SIGTERM or SIGINT first drains (`_drain`): the job in flight finishes
    and its outcome is sent, or it is released uncommitted. A second signal stops at once."""

    _draining: asyncio.Future[None] | None = None

    def _schedule_shutdown(self, signal: Any) -> None:
        if self._draining is not None:
            super()._schedule_shutdown(signal)
            return

        async def drain_then_stop() -> None:
            try:
                await self.app.drain()
            finally:
                super(StoppingWorker, self)._schedule_shutdown(signal)

        self._draining = asyncio.ensure_future(drain_then_stop())


class PriorityGate:
    """One family's drawing, one take at a time, DX work first: a normal take waits while a DX take
    is waiting or drawing, so DX work starts as soon as the take in flight ends."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._dx_waiting = 0
        self._busy = False

    @contextlib.asynccontextmanager
    async def turn(self, dx: bool) -> AsyncIterator[None]:
        async with self._changed:
            self._dx_waiting += dx
            try:
                await self._changed.wait_for(lambda: not self._busy and (dx or not self._dx_waiting))
            finally:
                self._dx_waiting -= dx
            self._busy = True
        try:
            yield
        finally:
            async with self._changed:
                self._busy = False
                self._changed.notify_all()


def _family_agent(
    app: faust.App,
    family: str,
    jobs: FamilyJobs,
    send: Any,
    to_dead_letter: Any,
    controls: QueueControls,
    report: Report,
) -> None:
    settings = jobs.settings
    gate = PriorityGate()

    def agent_for(dx: bool) -> Any:
        async def agent(stream: faust.StreamT[Any]) -> None:
            # Waiting jobs are taken together and drawn in as few pipeline calls as they allow; their
            # offsets are committed once the whole take is handled.
            async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
                waiting = []
                for event in events:
                    try:
                        waiting.append(codec.decode_work(event.value))
                    except codec.UndecodableMessage as exc:
                        await to_dead_letter(event, str(exc))
                if waiting:  # jobs fetched before their topic was held wait here; it fetches no more
                    await controls.wait_free(family, dx)
                for job in [job for job in waiting if controls.is_cancelled(job)]:
                    with logs.about(job):
                        log.info("%s of %s skipped: round %d was cancelled", family, job.name, job.round)
                        await send(cancelled_job(job, 0, job.generation.steps))
                    waiting.remove(job)
                if not waiting:
                    continue
                async with gate.turn(dx):
                    try:
                        await _draw(family, waiting, jobs, send, controls, report)
                    except Released as released:
                        with logs.about(*waiting):
                            log.warning("%s: %s", family, released)
                        # Faust acks a take when the agent leaves it; marked as acked here, the take's
                        # offsets are never committed (nor any after them), so another worker draws it
                        for event in events:
                            event.message.acked = True
                        return

        return agent

    # one agent per topic, so that a DX job reaches its agent while a normal take is drawing
    app.agent(app.topic(topics.family(family)), name=f"family-{family}")(agent_for(dx=False))
    app.agent(app.topic(topics.family(family, priority=True)), name=f"family-{family}-dx")(agent_for(dx=True))


async def _draw(
    family: str, waiting: list[m.GenerateFamily], jobs: FamilyJobs, send: Any, controls: QueueControls, report: Report
) -> None:
    for batch in batches(waiting):
        if controls.stopping:  # the batches left of the take are another worker's
            raise Released("not drawn: the worker is stopping")
        with jobs.in_flight():
            await _draw_batch(family, batch, jobs, send, controls, report)


async def _draw_batch(
    family: str, batch: list[m.GenerateFamily], jobs: FamilyJobs, send: Any, controls: QueueControls, report: Report
) -> None:
    with logs.about(*batch):
        for job in batch:
            await send(jobs.started(job))
        outcomes = await jobs.run_batch(batch, controls.is_cancelled, report)
    for job, outcome in zip(batch, outcomes, strict=True):
        with logs.about(job):
            await send(outcome)
            log.info(
                "%s %s of %s (round %d, %s, batch of %d) in %.2f s",
                family,
                type(outcome).__name__.removeprefix("Family").lower(),
                job.name,
                job.round,
                job.priority,
                len(batch),
                getattr(outcome, "duration_s", 0.0),
            )
