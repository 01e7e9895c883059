"""The webhook dispatcher (`imagegen webhooks`). It follows imagegen.domain-events in its own consumer
group and records a pending delivery per event and subscription that wants it (an outbox in Postgres)
before committing its offset; a delivery loop posts due deliveries concurrently, signed, and tries a
failed one again later, with exponential backoff and jitter, until it is delivered or out of attempts.
The outbox makes retries survive a restart, and lets several dispatchers share the work."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import random
import time
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError
from psycopg_pool import AsyncConnectionPool

from imagegen.config import Settings
from projections import migrations
from streams import clients, codec, topics
from webhooks import signing, store

log = logging.getLogger(__name__)

GROUP = "imagegen-webhooks"
USER_AGENT = f"imagegen-webhooks/{importlib.metadata.version('imagegen')}"
CONCURRENCY = 16  # deliveries in flight at once
POLL_S = 1.0  # at the longest between looks for due deliveries (another dispatcher may add some)


def backoff(attempt: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait after failed attempt number `attempt`: base, 2 base, 4 base… at most `cap_s`,
    plus up to 25 % so that the retries to a receiver back from an outage do not all come at once."""
    return float(min(cap_s, base_s * 2 ** (attempt - 1)) * (1 + random.random() / 4))


class Dispatcher:
    def __init__(self, settings: Settings, topic: str = topics.DOMAIN_EVENTS, group: str = GROUP) -> None:
        self.settings = settings
        self.topic = topic
        self.group = group
        self.ready = asyncio.Event()  # set once migrations are applied
        self._wake = asyncio.Event()  # new deliveries, a free slot, or stop

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        pool = AsyncConnectionPool(s.database_url, min_size=2, max_size=4, open=False, kwargs={"autocommit": True})
        async with pool:
            await pool.wait(timeout=30)
            async with pool.connection() as conn:
                if applied := await migrations.apply(conn):
                    log.info("applied migrations %s", applied)
            log.info("webhook dispatcher ready: group %s on %s", self.group, self.topic)
            self.ready.set()
            client = httpx.AsyncClient(timeout=s.webhook_timeout_s, headers={"user-agent": USER_AGENT})
            async with client, _waker(stop, self._wake):
                await asyncio.gather(self._consume(pool, stop), self._deliver(pool, client, stop))

    # --- domain events into the outbox ------------------------------------------------------------

    async def _consume(self, pool: AsyncConnectionPool, stop: asyncio.Event) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=self.group,
            enable_auto_commit=False,
            # a new group reads the whole topic: subscriptions only get what happens after their creation
            auto_offset_reset="earliest",
            **clients.COMMITTED,
            session_timeout_ms=int(s.kafka_session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.kafka_heartbeat_interval_s * 1000),
        )
        producer = clients.producer(s.kafka_bootstrap_servers)
        await consumer.start()
        try:
            await producer.start()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                if not batches:
                    continue
                events = []
                for record in (r for records in batches.values() for r in records):
                    try:
                        events.append(codec.decode_domain_event(record.value))
                    except codec.UndecodableMessage as exc:
                        await topics.dead_letter(producer, record, str(exc))
                async with pool.connection() as conn:
                    if await store.enqueue(conn, events):
                        self._wake.set()
                try:  # only now: a crash before this reads the events again, and enqueue adds nothing twice
                    await consumer.commit()
                except (CommitFailedError, IllegalStateError) as exc:  # a rebalance: the new owner reads them again
                    log.info("offsets not committed (%s); the events will be read again", exc)
        finally:
            await consumer.stop()
            await producer.stop()

    # --- the outbox to the receivers --------------------------------------------------------------

    async def _deliver(self, pool: AsyncConnectionPool, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        lease_s = self.settings.webhook_timeout_s + 30
        in_flight: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            self._wake.clear()
            room = CONCURRENCY - len(in_flight)
            async with pool.connection() as conn:
                claimed = await store.claim(conn, room, lease_s) if room else []
                wait = await store.due_in(conn)
            for due in claimed:
                task = asyncio.create_task(self._attempt(pool, client, due))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            # With room, sleep until the next delivery is due; without, until an attempt ends (it wakes us).
            timeout = min(wait, POLL_S) if room and len(claimed) < room and wait is not None else POLL_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        if in_flight:  # each ends within the timeout
            await asyncio.wait(in_flight)

    async def _attempt(self, pool: AsyncConnectionPool, client: httpx.AsyncClient, due: store.Due) -> None:
        s = self.settings
        headers = {
            "content-type": "application/json",
            "x-imagegen-event": due.event_type,
            "x-imagegen-delivery": str(due.id),
            signing.HEADER: signing.sign(due.secret, due.body),
        }
        started_at, began = datetime.now(UTC), time.perf_counter()
        code: int | None = None
        error: str | None = None
        try:
            async with (
                asyncio.timeout(s.webhook_timeout_s),
                client.stream("POST", due.url, content=due.body, headers=headers) as response,
            ):  # the response's body is not read: only its status counts
                code = response.status_code
        except Exception as exc:  # whatever kept it from being posted (refused, reset, timed out…): a failed attempt
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if code is not None and not 200 <= code < 300:
            error = f"HTTP {code}"
        attempt = store.Attempt(started_at, (time.perf_counter() - began) * 1000, code, error)
        retry_in = 0.0
        if error is None:
            status: store.Status = "delivered"
        elif code == 410 or due.attempt >= s.webhook_max_attempts:
            status = "failed"
        else:
            status, retry_in = "pending", backoff(due.attempt, s.webhook_backoff_s, s.webhook_backoff_max_s)
        try:
            async with pool.connection() as conn:
                await store.record(conn, due, attempt, status, retry_in)
                if code == 410:  # the receiver says the endpoint is gone for good
                    await store.deactivate(conn, due.subscription_id, f"the receiver answered 410 Gone at {started_at}")
        except Exception:  # the lease ends and the delivery is tried again
            log.exception("could not record attempt %d of delivery %s", due.attempt, due.id)
            return
        finally:
            self._wake.set()  # a slot is free
        log.info(
            "%s %s to %s, attempt %d: %s in %.0f ms%s",
            due.event_type,
            due.id,
            due.url,
            due.attempt,
            error or code,
            attempt.duration_ms,
            f"; next in {retry_in:.1f} s" if status == "pending" else f"; {status}",
        )


@contextlib.asynccontextmanager
async def _waker(stop: asyncio.Event, wake: asyncio.Event):  # type: ignore[no-untyped-def]
    """Sets `wake` when `stop` is set, while the block runs."""

    async def watch() -> None:
        await stop.wait()
        wake.set()

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()
