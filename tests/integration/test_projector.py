"""The projector on the real broker and Postgres: each story gets its own topic and database, so a
rebuild is just a fresh projector over the same log."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from projections.projector import Projector
from streams import codec, families, topics
from streams import messages as m
from tests.builders import generation
from tests.integration.kafka import produce, read_until
from tests.waiting import until_async

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GEN = generation("a lighthouse at dawn", 3)


def history(name: str) -> list[m.Event]:
    vid = m.variation_id(name)
    cmd = uuid.uuid4()
    job = m.derive_id(vid, 1, "square", 1)
    image = m.StoredImage(
        name="square", key=f"{name}/masters/square.webp", url="http://x/sq", width=1024, height=1024, bytes=10
    )
    profile = m.StoredImage(
        name="profile",
        key=f"{name}/derivatives/profile.webp",
        url="http://x/p",
        width=512,
        height=512,
        bytes=5,
        crop=(0, 0, 1024, 1024),
        crop_reason="face",
        crop_clear=True,
        scale=0.5,
    )
    common = dict(variation_id=vid, occurred_at=NOW)
    return [
        m.VariationRequested(
            event_id=m.derive_id(cmd, "requested"),
            command_id=cmd,
            name=name,
            category="sea",
            families=("square",),
            generation=GEN,
            priority="normal",
            **common,
        ),
        m.FamilyStarted(
            event_id=m.derive_id(job, "started"), job_id=job, family="square", round=1, attempt=1, worker="w1", **common
        ),
        m.FamilyCompleted(
            event_id=m.derive_id(job, "completed"),
            job_id=job,
            family="square",
            round=1,
            attempt=1,
            master=image,
            derivatives=(profile,),
            model="tiny",
            seed=3,
            duration_s=0.5,
            **common,
        ),
        m.VariationCompleted(event_id=m.derive_id(vid, 1, "concluded"), round=1, **common),
    ]


@pytest.fixture
async def database(stack):
    await topics.create_all(stack.bootstrap_servers, families.load(), stack.partitions)  # the dead-letter topic
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(stack.postgres.admin_url, autocommit=True) as admin:
        await admin.execute(f"create database {name}")
    return stack.database_url.rsplit("/", 1)[0] + "/" + name


async def project(stack, database: str, topic: str, until: int) -> Projector:
    """Run a projector until it has applied `until` events in total (with none to apply: for 10 s, in
    which it could have applied some)."""
    projector = Projector(stack.bootstrap_servers, database, topic)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    if until:

        async def applied() -> int:
            return projector.applied

        await until_async(applied, f"{until} events applied", 60, every=0.05, done=lambda n: n >= until or task.done())
    else:
        await asyncio.sleep(10)
    await asyncio.sleep(0.3)
    stop.set()
    await task
    return projector


async def rows(database: str) -> dict[str, list[tuple]]:
    async with await psycopg.AsyncConnection.connect(database) as conn:
        out = {}
        for table, order in [("variations", "name"), ("families", "family"), ("derivatives", "name")]:
            cur = await conn.execute(f"select * from {table} order by {order}")
            out[table] = await cur.fetchall()
        return out


async def test_a_history_delivered_twice_projects_once_and_resumes_from_its_position(stack, database):
    topic = f"test.events.{uuid.uuid4().hex[:8]}"
    events = history("lighthouse-dawn")
    for event in events:  # every event delivered twice, as at-least-once delivery may
        await produce(stack.bootstrap_servers, topic, event.key, codec.encode(event), codec.encode(event))
    first = await project(stack, database, topic, len(events))
    assert first.applied == len(events)
    tables = await rows(database)
    (variation,) = tables["variations"]
    assert variation[2:5] == ("lighthouse-dawn", "sea", "completed")
    (family,) = tables["families"]
    assert family[1:5] == ("square", "completed", 1, 1)
    (derivative,) = tables["derivatives"]
    assert derivative[2] == "profile" and derivative[-7:] == (0, 0, 1024, 1024, "face", True, 0.5)

    # a restarted projector starts after its recorded position: nothing is applied again
    again = await project(stack, database, topic, 0)
    assert again.applied == 0
    assert await rows(database) == tables
    async with await psycopg.AsyncConnection.connect(database) as conn:
        positions = await (await conn.execute("select sum(next_offset) from projection_positions")).fetchone()
    assert positions[0] == 2 * len(events)


async def test_a_rebuild_from_offset_zero_equals_the_live_read_model(stack, database):
    topic = f"test.events.{uuid.uuid4().hex[:8]}"
    events = history("rebuild-me")
    for event in events:
        await produce(stack.bootstrap_servers, topic, event.key, codec.encode(event))
    await project(stack, database, topic, len(events))
    live = await rows(database)
    async with await psycopg.AsyncConnection.connect(stack.postgres.admin_url, autocommit=True) as admin:
        fresh = f"t_{uuid.uuid4().hex[:12]}"
        await admin.execute(f"create database {fresh}")
    fresh_url = database.rsplit("/", 1)[0] + "/" + fresh
    await project(stack, fresh_url, topic, len(events))
    assert await rows(fresh_url) == live


async def test_an_undecodable_event_is_dead_lettered_and_projection_goes_on(stack, database):
    topic = f"test.events.{uuid.uuid4().hex[:8]}"
    events = history("after-bad-event")
    key = events[0].key
    await produce(stack.bootstrap_servers, topic, key, b'{"type": "VariationRequested", "version": 1}')
    for event in events:
        await produce(stack.bootstrap_servers, topic, key, codec.encode(event))
    projector = await project(stack, database, topic, len(events))
    assert projector.applied == len(events)
    dead = await read_until(
        stack.bootstrap_servers, topics.DEAD_LETTER, bool, lambda r: dict(r.headers).get("topic") == topic.encode()
    )
    assert b"event_id" in dict(dead[0].headers)["reason"]
    assert (await rows(database))["variations"][0][4] == "completed"


def as_version_1(event: m.Event) -> bytes:
    """`event` as the version-1 writers put it on the log: no framing fields on its derivatives."""
    data = json.loads(codec.encode(event))
    if data["type"] == "FamilyCompleted":
        data["version"] = 1
        for d in data["derivatives"]:
            del d["crop_reason"], d["crop_clear"], d["scale"]
        del data["subject"], data["subject_reason"]
    return json.dumps(data).encode()


async def test_a_log_with_version_1_events_reads_as_the_same_read_model(stack, database):
    # today's events, framed as version 1 always framed: entropy, at the scale the crop box gives
    events = history("old-and-new")
    completed = events[2]
    derivative = completed.derivatives[0].model_copy(update={"crop_reason": "entropy", "crop_clear": None})
    events[2] = completed.model_copy(update={"derivatives": (derivative,)})
    old, new = (f"test.events.{uuid.uuid4().hex[:8]}" for _ in range(2))
    for event in events:
        await produce(stack.bootstrap_servers, old, event.key, as_version_1(event))
        await produce(stack.bootstrap_servers, new, event.key, codec.encode(event))
    assert b'"version":1' in as_version_1(events[2]).replace(b" ", b"")
    await project(stack, database, old, len(events))
    async with await psycopg.AsyncConnection.connect(stack.postgres.admin_url, autocommit=True) as admin:
        fresh = f"t_{uuid.uuid4().hex[:12]}"
        await admin.execute(f"create database {fresh}")
    fresh_url = database.rsplit("/", 1)[0] + "/" + fresh
    await project(stack, fresh_url, new, len(events))
    upcast, current = await rows(database), await rows(fresh_url)
    assert upcast == current
    assert upcast["derivatives"][0][-3:] == ("entropy", None, 0.5)
