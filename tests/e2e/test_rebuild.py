"""Rebuilding the read model from offset 0 while the API is being read: no request fails, the rebuilt
tables equal a clean build, and the live projector goes on with them."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid

import httpx
import psycopg

from projections.projector import Projector
from projections.rebuild import rebuild
from tests.builders import create_body, generation_body
from tests.waiting import until_async

GENERATION = generation_body("a red kite over dunes", 5)
DONE = ("completed", "partial", "failed", "cancelled")


async def created(api: httpx.AsyncClient, name: str) -> dict:
    r = await api.post("/api/images/variations", json=create_body(name, GENERATION, families=["facebook-og"]))
    assert r.status_code == 202, r.text

    async def shown() -> dict | None:
        r = await api.get(f"/api/images/variations/name/{name}")
        return r.json() if r.status_code == 200 and r.json()["status"] in DONE else None

    return await until_async(shown, f"{name} done", 60)


async def settled(api: httpx.AsyncClient) -> list[dict]:
    """Every variation, once none is still generating."""

    async def listed() -> list[dict] | None:
        items = (await api.get("/api/images/variations", params={"limit": 100})).json()["items"]
        return items if all(v["status"] in DONE for v in items) else None

    return await until_async(listed, "no variation still generating", 60)


async def tables(url: str) -> dict[str, list[tuple]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        out = {}
        for table, order in [
            ("variations", "id"),
            ("families", "variation_id, family"),
            ("derivatives", "1, 3"),
            ("rejections", "event_id"),
        ]:
            out[table] = await (await conn.execute(f"select * from {table} order by {order}")).fetchall()
        return out


async def test_a_rebuild_while_the_api_is_read_fails_no_request_and_equals_a_clean_build(services, stack):
    async with httpx.AsyncClient(base_url=services.api_url, timeout=30) as api:
        first = await created(api, f"rebuild-{uuid.uuid4().hex[:6]}")
        before = await settled(api)
        answers: list[int] = []
        reading = asyncio.Event()

        async def read() -> None:
            while not reading.is_set():
                for path in (
                    "/api/images/variations",
                    f"/api/images/variations/{first['id']}",
                    f"/api/images/variations/name/{first['name']}",
                ):
                    answers.append((await api.get(path)).status_code)
                await asyncio.sleep(0)

        readers = [asyncio.create_task(read()) for _ in range(3)]
        seen: list[tuple[int, int]] = []
        began = time.perf_counter()
        done = await rebuild(stack.bootstrap_servers, stack.database_url, progress=lambda r, h, s: seen.append((r, h)))
        elapsed = time.perf_counter() - began
        reading.set()
        await asyncio.gather(*readers)
        print(
            f"\nrebuilt {done.events} events in {elapsed:.2f} s; {len(answers)} reads meanwhile, "
            f"statuses {sorted(set(answers))}"
        )

        assert answers and set(answers) == {200}  # no request failed while the tables were replaced
        assert seen[-1][0] == seen[-1][1] > 0 and done.events > 0  # progress, up to all the live tables held
        after = (await api.get("/api/images/variations", params={"limit": 100})).json()["items"]
        assert after == before

        # the rebuilt tables are what a clean build from offset 0 gives
        async with await psycopg.AsyncConnection.connect(stack.postgres.admin_url, autocommit=True) as admin:
            clean = f"clean_{uuid.uuid4().hex[:8]}"
            await admin.execute(f"create database {clean}")
        clean_url = stack.database_url.rsplit("/", 1)[0] + "/" + clean
        projector = Projector(stack.bootstrap_servers, clean_url)
        stop = asyncio.Event()
        task = asyncio.create_task(projector.run(stop))
        await projector.ready.wait()
        live = await tables(stack.database_url)
        await until_async(
            lambda: _positions_equal(stack.database_url, clean_url),
            "the clean build caught up with the live one",
            60,
            done=lambda equal: equal or task.done(),  # a projector that failed says why below
        )
        stop.set()
        await task
        assert await tables(clean_url) == live

        # the live projector goes on with the new tables
        later = await created(api, f"after-rebuild-{uuid.uuid4().hex[:6]}")
        assert later["status"] == "completed"


async def _positions_equal(a: str, b: str) -> bool:
    query = "select partition, next_offset from projection_positions where topic = 'imagegen.events' order by 1"
    async with await psycopg.AsyncConnection.connect(a) as one, await psycopg.AsyncConnection.connect(b) as two:
        return await (await one.execute(query)).fetchall() == await (await two.execute(query)).fetchall()


def test_the_rebuild_command_shows_its_progress_and_can_keep_the_replaced_tables(services, stack):
    env = {**os.environ, **stack.env()}
    ran = subprocess.run(
        [sys.executable, "-m", "imagegen.cli", "projections", "rebuild", "--keep-old"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    print("\n" + ran.stdout)
    assert "rebuilding the read model" in ran.stdout and "events" in ran.stdout
    kept = re.search(
        r"rebuilt from (\d+) events in [\d.]+ s and switched over; the replaced tables are in schema "
        r"(imagegen_replaced_\d+)",
        ran.stdout,
    )
    assert kept and int(kept.group(1)) > 0
    with psycopg.connect(stack.database_url) as conn:
        old = conn.execute(f"select count(*) from {kept.group(2)}.variations").fetchone()
        new = conn.execute("select count(*) from variations").fetchone()
        conn.execute(f"drop schema {kept.group(2)} cascade")
    assert old == new and new[0] > 0
