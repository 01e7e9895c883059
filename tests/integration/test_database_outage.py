"""Postgres restarted under a running projector process, on the real broker and Postgres of a stack of
its own: the projector waits for the database, resumes from the positions it recorded with the rows,
and its tables end equal to a clean rebuild from offset 0; every event is applied once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import psycopg

from imagegen.devstack import DevStack
from imagegen.services import Services
from streams import codec, topics
from streams import messages as m
from tests.conftest import ARTIFACTS
from tests.integration.kafka import produce
from tests.integration.test_projector import history, project, rows
from tests.waiting import until_async

VARIATIONS = 40
DOWN_S = 2.0  # the server stays down this long while events keep coming


async def completed(database_url: str) -> int:
    try:
        async with await psycopg.AsyncConnection.connect(database_url, connect_timeout=2) as conn:
            cur = await conn.execute("select count(*) from variations where status = 'completed'")
            return (await cur.fetchone())[0]
    except psycopg.Error:  # not migrated yet, or the server is restarting
        return -1


async def until_completed(stack: DevStack, services: Services, count: int, timeout: float = 90) -> None:
    async def projected() -> bool:
        services.check()  # the projector must not have died
        return await completed(stack.database_url) >= count

    await until_async(projected, f"{count} variations projected", timeout, every=0.2)


async def send(stack: DevStack, events: list[m.Event]) -> None:
    for event in events:
        await produce(stack.bootstrap_servers, topics.EVENTS, event.key, codec.encode(event))


async def test_a_projector_rides_out_a_postgres_restart_and_ends_equal_to_a_clean_rebuild() -> None:
    histories = [history(f"outage-{i:02d}") for i in range(VARIATIONS)]
    half = VARIATIONS // 2
    with DevStack(partitions=2) as stack:
        services = Services(stack.env(), ARTIFACTS / "logs" / "database-outage")
        subprocess.run([sys.executable, "-m", "imagegen.cli", "topics"], env=services.env, check=True)
        services.spawn("projector", "projector")
        try:
            await send(stack, [e for h in histories[:half] for e in h])
            await until_completed(stack, services, half)

            # the second half is posted while the server goes down and comes back
            sending = asyncio.create_task(send(stack, [e for h in histories[half:] for e in h]))
            restarted_at = time.monotonic()
            await asyncio.to_thread(stack.postgres.restart, DOWN_S)
            await sending
            await until_completed(stack, services, VARIATIONS)
            caught_up = time.monotonic() - restarted_at
            services.wait_for_log("projector", "answers again", 10)
            outages = (services.logs / "projector.log").read_text().count("does not answer")
        finally:
            services.stop()

        live = await rows(stack.database_url)
        async with await psycopg.AsyncConnection.connect(stack.database_url, autocommit=True) as conn:
            applied = (await (await conn.execute("select count(*) from applied_events")).fetchone())[0]
            positions = (await (await conn.execute("select sum(next_offset) from projection_positions")).fetchone())[0]
        fresh = f"t_{uuid.uuid4().hex[:12]}"
        async with await psycopg.AsyncConnection.connect(stack.postgres.admin_url, autocommit=True) as admin:
            await admin.execute(f"create database {fresh}")
        fresh_url = stack.database_url.rsplit("/", 1)[0] + "/" + fresh
        events = sum(len(h) for h in histories)
        await project(stack, fresh_url, topics.EVENTS, events)
        rebuilt = await rows(fresh_url)

    assert len(live["variations"]) == VARIATIONS and all(v[4] == "completed" for v in live["variations"])
    assert applied == events and positions == events  # each event applied once, every position recorded
    assert {t: sorted(r, key=str) for t, r in live.items()} == {t: sorted(r, key=str) for t, r in rebuilt.items()}
    print(
        f"\n{events} events of {VARIATIONS} variations; Postgres down {DOWN_S:.0f} s after {half}; the projector "
        f"logged {outages} failed attempts, resumed from its recorded positions and caught up {caught_up:.1f} s "
        f"after the restart began; {applied} events applied once; tables equal to a clean rebuild "
        f"({len(live['variations'])} variations, {len(live['families'])} families, "
        f"{len(live['derivatives'])} derivatives)"
    )
