"""A broker lost under load: a three-broker Apache Kafka cluster (KRaft, on this machine), topics with
three replicas and `min.insync.replicas=2`, idempotent producers with `acks=all`. Variations are posted
over HTTP; mid-way the broker leading most of the command topic's partitions is killed with -9, and
later started again. Every command answered 202 completes exactly once, and the read model equals a
clean replay of the log."""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from imagegen.devstack import DevStack, free_port
from imagegen.services import Services
from streams import codec, topics
from tests.builders import create_body, generation_body
from tests.conftest import ARTIFACTS
from tests.integration.kafka import read_until
from tests.integration.test_projector import project, rows
from tests.waiting import until_async

VARIATIONS = 30
KILL_AFTER = 12  # posted before the leader is lost


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[DevStack, Services]]:
    with DevStack(partitions=4, brokers=3) as stack:
        port = free_port()
        env = {
            **stack.env(),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "TORCH_THREADS": "1",
            "MODEL_CACHE_DIR": str(ARTIFACTS / "models"),
            "WORKER_FAMILIES": "square",
        }
        services = Services(env, ARTIFACTS / "logs" / "broker-loss", api_port=port)
        try:
            services.start(timeout=180)
            yield stack, services
        finally:
            services.stop()


async def leaders(servers: str, topic: str) -> dict[int, int]:
    """partition -> the id of the broker leading it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return {p["partition"]: p["leader"] for p in described["partitions"]}
    finally:
        await admin.close()


async def post(client: httpx.AsyncClient, name: str, tries: dict[str, int]) -> uuid.UUID:
    """POST until answered 202, as a client does: a 503 (the broker did not confirm in time) may be
    repeated safely, the create's id coming from its content."""
    body = create_body(name, generation_body("a harbour at dusk", 3, steps=1))

    async def posted() -> httpx.Response | None:
        tries[name] = tries.get(name, 0) + 1
        r = await client.post("/api/images/variations", json=body)
        assert r.status_code in (202, 503), r.text
        return r if r.status_code == 202 else None

    r = await until_async(posted, f"{name} accepted", 60, every=0.5, ignoring=(httpx.TimeoutException,))
    return uuid.UUID(r.json()["id"])


async def completed(database_url: str) -> set[uuid.UUID]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("select id from variations where status = 'completed'")
        return {row[0] for row in await cur.fetchall()}


async def test_losing_the_command_topics_leader_loses_no_command_and_doubles_none(
    cluster: tuple[DevStack, Services],
) -> None:
    stack, services = cluster
    servers = stack.bootstrap_servers
    tries: dict[str, int] = {}
    accepted: list[uuid.UUID] = []
    run = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=services.api_url, timeout=15) as client:
        for i in range(KILL_AFTER):
            accepted.append(await post(client, f"loss-{run}-{i:02d}", tries))

        # the broker leading most of the command topic's partitions dies mid-way
        led = collections.Counter((await leaders(servers, topics.COMMANDS)).values())
        victim = led.most_common(1)[0][0]
        stack.broker.kill(victim)
        killed_at = time.monotonic()
        for i in range(KILL_AFTER, VARIATIONS):
            accepted.append(await post(client, f"loss-{run}-{i:02d}", tries))
        posted_s = time.monotonic() - killed_at

        # ...and comes back once every command is in
        await asyncio.to_thread(stack.broker.restart, victim)
        restarted_s = time.monotonic() - killed_at

    async def all_completed() -> bool:
        services.check()
        return await completed(stack.database_url) >= set(accepted)

    await until_async(all_completed, f"the {len(accepted)} accepted variations completed", 150, every=0.5)
    recovered_s = time.monotonic() - killed_at
    ours = set(accepted)

    # exactly once: one conclusion per variation in the log, by event id, whatever was redelivered
    def concluded(records: list) -> bool:
        return {r.key for r in records} >= {str(v).encode() for v in ours}

    records = await read_until(
        servers,
        topics.EVENTS,
        concluded,
        keep=lambda r: r.key is not None and uuid.UUID(r.key.decode()) in ours and b'"VariationCompleted"' in r.value,
    )
    events = [codec.decode_event(r.value) for r in records]
    per_variation = collections.Counter(e.variation_id for e in {e.event_id: e for e in events}.values())
    assert per_variation == dict.fromkeys(ours, 1)
    duplicates = len(events) - len(per_variation)

    # the read model equals a clean replay of the log
    live = await rows(stack.database_url)
    fresh = f"t_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(stack.postgres.admin_url, autocommit=True) as admin:
        await admin.execute(f"create database {fresh}")
    fresh_url = stack.database_url.rsplit("/", 1)[0] + "/" + fresh
    async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
        held = (await (await conn.execute("select sum(next_offset) from projection_positions")).fetchone())[0]
    await project(stack, fresh_url, topics.EVENTS, held)
    rebuilt = await rows(fresh_url)
    assert {t: sorted(r, key=str) for t, r in live.items()} == {t: sorted(r, key=str) for t, r in rebuilt.items()}
    families = [f for f in live["families"] if f[0] in ours]
    assert len(families) == len(ours) and all(f[2] == "completed" for f in families), families[:3]

    repeats = sum(tries.values()) - len(tries)
    print(
        f"\nthree brokers, replication 3, min.insync.replicas 2; broker {victim} (leader of "
        f"{led[victim]} of {sum(led.values())} command partitions) killed -9 after {KILL_AFTER} of {VARIATIONS} "
        f"posts; the other {VARIATIONS - KILL_AFTER} posted in {posted_s:.1f} s ({repeats} POSTs repeated after "
        f"a 503 or timeout); restarted after {restarted_s:.1f} s; all {len(ours)} accepted completed "
        f"{recovered_s:.1f} s after the kill, each once ({duplicates} VariationCompleted records redelivered, "
        f"dropped by id); read model equal to a clean replay of {held} events"
    )
