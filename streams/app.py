"""The Faust app: the variations agent (the aggregate) and one family agent per family, over the family
table, with the worker's tasks and timers (its heartbeat, live progress, held partitions). Each part is
a function taking what it needs, wired by `create_app`; agents are thin: decode, call the domain or the
job, send keyed by variation id. Undecodable messages go to the dead-letter topic; a consumer never
crashes on input."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust

from imagegen.config import Settings
from storage import Storage, StorageError, open_storage
from streams import clients, codec, domain, kafka, logs, operational, stopping, topics, variant_sets
from streams import messages as m
from streams.brand import BrandPolicy
from streams.control import QueueControls
from streams.families import FamilyTable
from streams.gate import PriorityGate
from streams.jobs import FamilyJobs, Report, batches
from streams.outcomes import Released, cancelled_job
from streams.peak import PeakHours

log = logging.getLogger(__name__)


def create_app(settings: Settings, table: FamilyTable, families: tuple[str, ...]) -> faust.App:
    app = _faust_app(settings)
    log_ = Log(app)
    brand = BrandPolicy.configured(settings.blocked_terms, settings.brand_negative_prompt)
    controls = QueueControls(PeakHours.parse(settings.peak_hours, settings.peak_timezone))
    storage = open_storage(settings)
    jobs = FamilyJobs(settings, table, storage)
    _aggregate(app, log_, table, brand, settings.public_base_url)
    _storage_for_life(app, storage)
    _presence(app, jobs, settings, families)
    report = _progress(app, settings.kafka_bootstrap_servers)
    app.task(functools.partial(controls.follow, settings.kafka_bootstrap_servers))
    app.timer(interval=1.0, name="hold_partitions")(
        functools.partial(_hold, controls=controls, held=Held(table, families))
    )
    for family in table.subset(families):
        _family_agents(app, family.name, jobs, log_, controls, report)
    app.drain = functools.partial(stopping.drain, jobs, controls, settings.shutdown_grace_s)  # StoppingWorker's
    return app


def _faust_app(settings: Settings) -> faust.App:
    return kafka.App(
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


class Log:
    """The app's way onto the log: sends that wait for the broker, the dead-letter topic, and streams
    of decoded messages."""

    def __init__(self, app: faust.App) -> None:
        self.app, self.dead_letters = app, app.topic(topics.DEAD_LETTER)

    async def send(self, message: Any) -> None:
        # Wait for the broker's acknowledgement: an input is only recorded as handled (table write,
        # offset commit) once everything it caused is safely in the log.
        for name in topics.route(message):
            await (await self.app.send(name, key=message.key, value=codec.encode(message)))

    async def dead_letter(self, event: faust.EventT, reason: str) -> None:
        msg = event.message
        log.warning("dead-lettering %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason)
        # acknowledged before the input's offset may be committed: a dead letter is never lost
        sent = await self.dead_letters.send(
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

    async def decoded(self, stream: faust.StreamT[Any], decode: Callable[[bytes], Any]) -> AsyncIterator[Any]:
        """The stream's messages, decoded; one that cannot be decoded goes to the dead-letter topic."""
        async for event in stream.events():
            try:
                message = decode(event.value)
            except codec.UndecodableMessage as exc:
                await self.dead_letter(event, str(exc))
                continue
            yield message


def _aggregate(app: faust.App, log_: Log, table: FamilyTable, brand: BrandPolicy, api_base: str) -> None:
    """The variations agent: each command and event through its aggregate's step (a variation's, or for
    a variant set's messages the set's), the aggregates' states in tables keyed like the messages."""
    variations = app.Table("variations", default=None, key_type=bytes, value_type=bytes)
    sets = app.Table("variant_sets", default=None, key_type=bytes, value_type=bytes)

    @app.agent(app.topic(topics.COMMANDS, topics.EVENTS), name="variations")
    async def variations_agent(stream: faust.StreamT[Any]) -> None:
        async for message in log_.decoded(stream, codec.decode_any):
            key, now = message.key, m.utcnow()
            if isinstance(message, variant_sets.MESSAGES):
                stored = sets.get(key)
                state: Any = variant_sets.VariantSet.model_validate_json(stored) if stored else None
                new, out, announced = variant_sets.step(state, message, now, api_base)
                into = sets
            else:
                stored = variations.get(key)
                state = domain.Variation.model_validate_json(stored) if stored else None
                new, out, announced = domain.step(state, message, now, table.names, brand)
                into = variations
            # Send first, then record: a crash in between redelivers the input, and the same
            # decisions come out again with the same ids, which every consumer drops.
            for msg in [*out, *announced]:
                await log_.send(msg)
            if new is not None and new != state:
                into[key] = new.model_dump_json().encode()


def _storage_for_life(app: faust.App, storage: Storage) -> None:
    async def open_storage_at_start() -> None:
        """Make the S3 client and check the bucket now, so that a bad setting shows in the log at start;
        a storage the first job finds closed is opened then."""
        try:
            await storage.open()
        except StorageError as exc:
            log.error("image storage does not answer: %s", exc)

    async def close_storage(app: faust.App, **kwargs: Any) -> None:
        await storage.close()  # after the consumer stopped: no job is storing

    app.task(open_storage_at_start)
    app.on_before_shutdown.connect(close_storage)


def _presence(app: faust.App, jobs: FamilyJobs, settings: Settings, families: tuple[str, ...]) -> None:
    """The default model loaded at start, then a heartbeat on the workers topic every interval."""

    async def heartbeat() -> None:
        beat = jobs.heartbeat(families)
        await app.send(topics.WORKERS, key=beat.key, value=codec.encode(beat))

    async def load_default_model() -> None:
        """Load the default model before the first job asks for it, and where it is compiled, compile
        every shape served (jobs queue behind this)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(jobs.executor, jobs.pipelines.get, settings.default_model)
            log.info("default model %s loaded", settings.default_model)
        except Exception as exc:  # a worker without those weights still serves other models
            log.warning("default model %s not loaded: %s", settings.default_model, exc)
            await heartbeat()
            return
        if await loop.run_in_executor(jobs.executor, jobs.compiles, settings.default_model):
            jobs.warming = True
            await heartbeat()  # "warming" until every shape served is compiled
            try:
                await loop.run_in_executor(jobs.executor, jobs.warm, settings.default_model, families)
            except Exception as exc:  # the jobs compile the shapes then, one by one
                log.warning("default model %s not compiled ahead: %s", settings.default_model, exc)
            finally:
                jobs.warming = False
        await heartbeat()

    app.task(load_default_model)
    app.timer(interval=settings.heartbeat_interval_s, name="heartbeat")(lambda app: heartbeat())


def _progress(app: faust.App, bootstrap_servers: str) -> Report:
    """The report a drawing calls at each denoising step, and the task that sends the steps out."""
    steps: asyncio.Queue[operational.Progress] = asyncio.Queue(maxsize=10_000)

    def report(progress: operational.Progress) -> None:
        """A denoising step done (or a preview), from the drawing thread by way of the loop; sent in order."""
        with contextlib.suppress(asyncio.QueueFull):  # live status only: never hold a drawing up
            steps.put_nowait(progress)

    async def send_progress() -> None:
        """Steps go out on a producer of their own, never waited for: live status must never hold up, or
        share a buffer with, the sends the event log depends on."""
        producer = clients.producer(bootstrap_servers, acks=1, linger_ms=20, enable_idempotence=False)
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

    app.task(send_progress)
    return report


class Held:
    """Which work topics are held now and which partitions this worker paused for it (resumed are only
    these: Faust pauses partitions of its own, in recovery)."""

    def __init__(self, table: FamilyTable, families: tuple[str, ...]) -> None:
        self.served = table.subset(families)
        self.why: dict[str, str | None] = {}
        self.paused: set[Any] = set()


async def _hold(app: faust.App, *, controls: QueueControls, held: Held) -> None:
    """Pause the partitions of held work topics, the Kafka way: their jobs wait in the broker."""
    try:
        assigned = app.consumer.assignment()
    except Exception as exc:  # between assignments (a rebalance): the next tick pauses them
        log.debug("no assignment to hold yet: %s", exc)
        return
    for family in held.served:
        for dx in (False, True):
            topic = topics.family(family.name, priority=dx)
            why = controls.held(family.name, dx, m.utcnow())
            tps = [tp for tp in assigned if tp.topic == topic]
            if why:
                app.consumer.pause_partitions(tps)
                held.paused.update(tps)
            elif ours := [tp for tp in held.paused if tp.topic == topic]:
                app.consumer.resume_partitions(ours)
                held.paused.difference_update(ours)
            if held.why.get(topic) != why:
                log.info("%s: %s", topic, f"held: {why}" if why else "taken")
                held.why[topic] = why


def _family_agents(
    app: faust.App, family: str, jobs: FamilyJobs, log_: Log, controls: QueueControls, report: Report
) -> None:
    """One agent per work topic of the family, so that a DX job reaches its agent while a normal take
    is drawing; both draw through one gate, DX first."""
    gate = PriorityGate()
    for dx in (False, True):
        name = f"family-{family}" + ("-dx" if dx else "")

        async def agent(stream: faust.StreamT[Any], dx: bool = dx) -> None:
            await _take_jobs(stream, family, dx, jobs, log_, controls, gate, report)

        app.agent(app.topic(topics.family(family, priority=dx)), name=name)(agent)


async def _take_jobs(
    stream: faust.StreamT[Any],
    family: str,
    dx: bool,
    jobs: FamilyJobs,
    log_: Log,
    controls: QueueControls,
    gate: PriorityGate,
    report: Report,
) -> None:
    """Waiting jobs are taken together and drawn in as few pipeline calls as they allow; their offsets
    are committed once the whole take is handled."""
    settings = jobs.settings
    async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
        waiting = []
        for event in events:
            try:
                waiting.append(codec.decode_work(event.value))
            except codec.UndecodableMessage as exc:
                await log_.dead_letter(event, str(exc))
        if waiting:  # jobs fetched before their topic was held wait here; it fetches no more
            await controls.wait_free(family, dx)
        for job in [job for job in waiting if controls.is_cancelled(job)]:
            with logs.about(job):
                log.info("%s of %s skipped: round %d was cancelled", family, job.name, job.round)
                await log_.send(cancelled_job(job, 0, job.generation.steps))
            waiting.remove(job)
        if not waiting:
            continue
        async with gate.turn(dx):
            try:
                await _draw(family, waiting, jobs, log_, controls, report)
            except Released as released:
                with logs.about(*waiting):
                    log.warning("%s: %s", family, released)
                kafka.never_commit(events)  # another worker draws the take
                return


async def _draw(
    family: str, waiting: list[m.GenerateFamily], jobs: FamilyJobs, log_: Log, controls: QueueControls, report: Report
) -> None:
    for batch in batches(waiting):
        if controls.stopping:  # the batches left of the take are another worker's
            raise Released("not drawn: the worker is stopping")
        with jobs.in_flight():
            await _draw_batch(family, batch, jobs, log_, controls, report)


async def _draw_batch(
    family: str, batch: list[m.GenerateFamily], jobs: FamilyJobs, log_: Log, controls: QueueControls, report: Report
) -> None:
    with logs.about(*batch):
        for job in batch:
            await log_.send(jobs.started(job))
        outcomes = await jobs.run_batch(batch, controls.is_cancelled, report)
    for job, outcome in zip(batch, outcomes, strict=True):
        with logs.about(job):
            await log_.send(outcome)
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
