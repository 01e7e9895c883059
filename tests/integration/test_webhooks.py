"""The webhook dispatcher on the real broker and Postgres, posting to a real HTTP receiver: retries
with backoff until an attempt limit, 410 Gone, a restart in the middle of retries, a redelivered event,
an undecodable one. Each story has its own topic, consumer group and tables, and short backoffs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg.conninfo import make_conninfo

from imagegen.config import Settings
from projections import migrations
from streams import codec, domain_events, families, topics
from streams import messages as m
from tests.integration.kafka import produce, read_until
from tests.waiting import until_async
from tests.webhook_receiver import Receiver
from webhooks import store
from webhooks.dispatcher import Dispatcher

SECRET = "integration-secret-0123456789"
VARIATION = m.variation_id("webhook-integration")


@pytest.fixture(scope="module")
async def database(stack) -> str:
    await topics.create_all(stack.bootstrap_servers, families.load(), stack.partitions)  # the dead-letter topic
    async with await psycopg.AsyncConnection.connect(stack.database_url, autocommit=True) as conn:
        await conn.execute("drop database if exists webhooks_it")
        await conn.execute("create database webhooks_it")
    url = make_conninfo(stack.database_url, dbname="webhooks_it")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrations.apply(conn)
    return url


@pytest.fixture
async def db(database) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await conn.execute("truncate webhook_subscriptions cascade")
        yield conn


@pytest.fixture
async def topic(stack) -> str:
    name = f"webhooks-test.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    return name


def settings(stack, database: str, **webhooks: float) -> Settings:
    return Settings(
        kafka_bootstrap_servers=stack.bootstrap_servers,
        kafka_session_timeout_s=1,
        kafka_heartbeat_interval_s=0.2,
        database_url=database,
        **{f"webhook_{k}": v for k, v in webhooks.items()},
    )


@contextlib.asynccontextmanager
async def dispatcher(settings: Settings, topic: str, group: str) -> AsyncIterator[Dispatcher]:
    stop = asyncio.Event()
    running = Dispatcher(settings, topic=topic, group=group)
    task = asyncio.create_task(running.run(stop))
    ready = asyncio.create_task(running.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED, timeout=30)
    if task.done():
        task.result()  # it failed to start: say why
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def subscribe(db, url: str, events: tuple[str, ...] = ()) -> uuid.UUID:
    return uuid.UUID((await store.create_subscription(db, url, SECRET, events, "test"))["id"])


def completed() -> domain_events.ImageVariationCompleted:
    return domain_events.ImageVariationCompleted(
        id=uuid.uuid4(), time=m.utcnow(), correlation_id=uuid.uuid4(), variation_id=VARIATION, public_urls={}
    )


async def log_of(db, sid: uuid.UUID, done=lambda log: True, timeout: float = 30.0) -> list[dict]:
    """The subscription's delivery log once `done` says so."""
    return await until_async(
        lambda: store.deliveries(db, sid, 100), "the delivery log as expected", timeout, every=0.05, done=done
    )


async def test_a_receiver_that_keeps_failing_gets_every_attempt_further_apart_then_the_delivery_fails(
    stack, database, db, topic
):
    # at most 4 attempts, 0.1 s then 0.2 s then (capped) 0.3 s apart, each plus up to 25 %
    with Receiver(lambda path, before: 503) as receiver:
        sid = await subscribe(db, f"{receiver.url}/down")
        receiver.secrets["/down"] = SECRET
        wanted = settings(stack, database, max_attempts=4, backoff_s=0.1, backoff_max_s=0.3)
        async with dispatcher(wanted, topic, f"it-{topic}"):
            event = completed()
            await produce(stack.bootstrap_servers, topic, event.key, codec.encode(event))
            (delivery,) = await log_of(db, sid, lambda log: log and log[0]["status"] == "failed")
            await asyncio.sleep(0.5)  # and nothing more comes
        tries = receiver.at("/down")
    assert len(tries) == 4 and all(t.signed and t.delivery == delivery["id"] for t in tries)
    gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
    for gap, nominal in zip(gaps, (0.1, 0.2, 0.3), strict=True):
        assert nominal <= gap < nominal * 1.25 + 0.25, gaps
    assert delivery["attempts"] == 4 and delivery["lastStatusCode"] == 503 and delivery["lastError"] == "HTTP 503"
    assert [a["statusCode"] for a in delivery["attemptLog"]] == [503] * 4
    assert [a["attempt"] for a in delivery["attemptLog"]] == [1, 2, 3, 4]
    print(f"\nretry gaps {', '.join(f'{g:.3f}' for g in gaps)} s (nominal 0.1, 0.2, 0.3 capped)")


async def test_410_gone_turns_the_subscription_off(stack, database, db, topic):
    with Receiver(lambda path, before: 410 if path == "/gone" else 204) as receiver:
        gone = await subscribe(db, f"{receiver.url}/gone")
        other = await subscribe(db, f"{receiver.url}/other")
        receiver.secrets.update({"/gone": SECRET, "/other": SECRET})
        async with dispatcher(settings(stack, database, backoff_s=0.05), topic, f"it-{topic}"):
            first = completed()
            await produce(stack.bootstrap_servers, topic, first.key, codec.encode(first))
            (delivery,) = await log_of(db, gone, lambda log: log and log[0]["status"] == "failed")
            second = completed()  # after the 410: for the other subscription only
            await produce(stack.bootstrap_servers, topic, second.key, codec.encode(second))
            await log_of(db, other, lambda log: [d["status"] for d in log] == ["delivered"] * 2)
        subscription = await store.subscription(db, gone)
    assert delivery["attempts"] == 1 and delivery["lastStatusCode"] == 410
    assert subscription["active"] is False and "410 Gone" in subscription["inactiveReason"]
    assert [r.event["id"] for r in receiver.at("/gone")] == [str(first.id)]
    assert len(await store.deliveries(db, gone, 100)) == 1


async def test_a_restarted_dispatcher_goes_on_with_the_deliveries_still_pending(stack, database, db, topic):
    down = True
    with Receiver(lambda path, before: 503 if down else 204) as receiver:
        sid = await subscribe(db, f"{receiver.url}/later")
        receiver.secrets["/later"] = SECRET
        wanted = settings(stack, database, backoff_s=0.3, max_attempts=50)
        event = completed()
        async with dispatcher(wanted, topic, f"it-{topic}"):
            await produce(stack.bootstrap_servers, topic, event.key, codec.encode(event))
            await receiver.until(lambda r: r.at("/later"))
        # stopped while the delivery waits for its next attempt
        (pending,) = await store.deliveries(db, sid, 100)
        assert pending["status"] == "pending" and pending["attempts"] >= 1
        down = False
        async with dispatcher(wanted, topic, f"it-{topic}"):  # the same group: the event is not read again
            (done,) = await log_of(db, sid, lambda log: log[0]["status"] == "delivered")
    assert done["id"] == pending["id"] and done["attempts"] == pending["attempts"] + 1
    tries = receiver.at("/later")
    assert [t.status for t in tries] == [503] * pending["attempts"] + [204]
    assert {t.delivery for t in tries} == {pending["id"]}


async def test_a_redelivered_event_is_delivered_once_and_an_undecodable_one_is_dead_lettered(
    stack, database, db, topic
):
    with Receiver() as receiver:
        sid = await subscribe(db, f"{receiver.url}/all")
        only_completed = await subscribe(db, f"{receiver.url}/completed", ("IMAGE_VARIATION_COMPLETED",))
        receiver.secrets.update({"/all": SECRET, "/completed": SECRET})
        first, second = completed(), completed()
        started = domain_events.ImageVariationStarted(
            id=uuid.uuid4(), time=m.utcnow(), correlation_id=uuid.uuid4(), variation_id=VARIATION, family_count=1
        )
        # at-least-once: the same event twice, one no reader understands, then more (one partition, in order)
        wires = [codec.encode(first), codec.encode(first), b"{not json", codec.encode(started), codec.encode(second)]
        async with dispatcher(settings(stack, database), topic, f"it-{topic}"):
            await produce(stack.bootstrap_servers, topic, first.key, *wires)
            log = await log_of(db, sid, lambda log: len(log) == 3 and {d["status"] for d in log} == {"delivered"})
            await log_of(db, only_completed, lambda log: len(log) == 2 and log[0]["status"] == "delivered")
        dead = await read_until(
            stack.bootstrap_servers,
            topics.DEAD_LETTER,
            lambda seen: bool(seen),
            keep=lambda r: dict(r.headers).get("topic") == topic.encode(),
        )
    assert [d["eventId"] for d in log] == [str(second.id), str(started.id), str(first.id)]  # newest first
    received = receiver.at("/all")
    assert sorted(r.event["id"] for r in received) == sorted(str(e.id) for e in (first, started, second))
    assert all(r.accepted and r.signed for r in received)
    assert {r.body for r in received} == {
        codec.encode(first),
        codec.encode(started),
        codec.encode(second),
    }  # the wire, as is
    assert [r.event_type for r in receiver.at("/completed")] == ["IMAGE_VARIATION_COMPLETED"] * 2
    (letter,) = dead
    assert letter.value == b"{not json" and b"not JSON" in dict(letter.headers)["reason"]
