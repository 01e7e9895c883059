"""Replay benchmark: rebuild the read model from a realistic event log on the test broker with a
naive projector (bench/naive_projector.py: a savepoint and statements per event), imagegen's in one
process, and imagegen's pool of processes as `imagegen projections rebuild` runs it, in one run, into
fresh databases, and check that all give the same tables.

The log: variations of one to three families, each family started and completed (one in twenty fails,
one in ten variations is regenerated), about five events per variation, and one event in fifty
delivered twice, as at-least-once delivery may.

    .venv/bin/python bench/replay.py                       # 20,000 variations, about 100,000 events
    .venv/bin/python bench/replay.py --variations 2000 --skip-naive
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import naive_projector
from imagegen.devstack import DevStack
from projections import migrations
from projections.pool import ProjectorPool, default_processes
from projections.projector import Projector
from streams import clients, codec
from streams import messages as m

FAMILIES = {
    "square": ("og-square", "twitter-card", "profile", "instagram-post"),
    "landscape": ("hero-banner", "youtube-thumbnail", "banner", "x-large-card"),
    "facebook-og": ("og-image", "facebook-link", "linkedin-share"),
}


def history(count: int, seed: int = 7) -> list[m.Event]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 25, tzinfo=UTC)
    events: list[m.Event] = []
    for i in range(count):
        name = f"campaign-{i:06d}"
        vid, command = m.variation_id(name), m.derive_id("bench", name)
        at = start + timedelta(seconds=i)
        common: dict[str, Any] = dict(variation_id=vid, occurred_at=at)
        families = tuple(rng.sample(list(FAMILIES), rng.choice((1, 1, 2, 3))))
        generation = m.Generation(prompt=f"campaign {i}", seed=i, model="tiny", steps=4, guidance=5.0)
        events.append(
            m.VariationRequested(
                event_id=m.derive_id(command, "requested"),
                command_id=command,
                name=name,
                category=rng.choice(("retail", "travel", "food")),
                families=families,
                generation=generation,
                priority="normal",
                **common,
            )
        )
        for round_ in (1, 2) if rng.random() < 0.1 else (1,):
            if round_ == 2:
                events.append(
                    m.RegenerationRequested(
                        event_id=m.derive_id(command, "regenerate"), command_id=uuid.uuid4(), round=2, **common
                    )
                )
            failed = {}
            for family in families:
                job = m.derive_id(vid, round_, family, 1)
                about = dict(job_id=job, family=family, round=round_, attempt=1, **common)
                events.append(m.FamilyStarted(event_id=m.derive_id(job, "started"), worker="gpu-1:1", **about))
                if rng.random() < 0.05:
                    failed[family] = "CUDA out of memory"
                    events.append(
                        m.FamilyFailed(
                            event_id=m.derive_id(job, "failed"),
                            error_kind="OutOfMemoryError",
                            message=failed[family],
                            retryable=True,
                            **about,
                        )
                    )
                    continue
                events.append(
                    m.FamilyCompleted(
                        event_id=m.derive_id(job, "completed"),
                        master=_image(name, family, 1024),
                        derivatives=tuple(_image(name, d, 800, crop=True) for d in FAMILIES[family]),
                        model="tiny",
                        seed=i,
                        duration_s=2.5,
                        scheduler="EulerDiscreteScheduler",
                        weights="sha256:ab",
                        subject=(10, 20, 300, 400),
                        subject_reason="face",
                        **about,
                    )
                )
            concluded = dict(event_id=m.derive_id(vid, round_, "concluded"), round=round_, **common)
            if not failed:
                events.append(m.VariationCompleted(**concluded))
            elif len(failed) == len(families):
                events.append(m.VariationFailed(error_message="; ".join(failed.values()), **concluded))
            else:
                events.append(m.VariationPartial(failed=failed, **concluded))
    # at-least-once: some events come twice, the second soon after the first
    for at in sorted(rng.sample(range(len(events)), len(events) // 50), reverse=True):
        events.insert(at + 1, events[at])
    return events


def _image(variation: str, name: str, side: int, crop: bool = False) -> m.StoredImage:
    return m.StoredImage(
        name=name,
        key=f"{variation}/{name}.webp",
        url=f"https://img.example.com/api/images/{variation}/{name}",
        width=side,
        height=side,
        bytes=48_213,
        crop=(0, 0, 1024, 1024) if crop else None,
        crop_reason="face" if crop else None,
        crop_clear=True if crop else None,
        scale=side / 1024 if crop else None,
    )


async def produce(servers: str, topic: str, events: list[m.Event]) -> None:
    producer = clients.producer(servers, linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, key=e.key, value=codec.encode(e)) for e in events]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


class NaiveProjector(Projector):
    async def apply(self, conn: Any, batch: Any, last: Any, dead_letter: Any) -> None:
        async with conn.transaction():
            applied = await naive_projector.apply(conn, [event for _, event in batch])
            await conn.execute(
                """insert into projection_positions (topic, partition, next_offset) values (%s, %s, %s)
                   on conflict (topic, partition) do update set next_offset = excluded.next_offset""",
                (last.topic, last.partition, last.offset + 1),
            )
        self.applied += applied


async def rebuild(projector: Projector | ProjectorPool, unique: int) -> float:
    stop = asyncio.Event()
    began = time.perf_counter()
    task = asyncio.create_task(projector.run(stop))
    while projector.applied < unique:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - began
    stop.set()
    await task
    return elapsed


async def tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        out = {}
        for table, order in (("variations", "id"), ("families", "variation_id, family"), ("derivatives", "1, 3")):
            cur = await conn.execute(f"select * from {table} order by {order}")
            out[table] = [tuple(row) for row in await cur.fetchall()]
        return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variations", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=default_processes(), help="for the pool (default: cores)")
    parser.add_argument("--skip-naive", action="store_true", help="leave the slow baseline out")
    args = parser.parse_args()
    events = history(args.variations)
    total, unique = len(events), len({e.event_id for e in events})
    with DevStack(partitions=4) as stack:
        topic = "bench.events"
        began = time.perf_counter()
        await produce(stack.bootstrap_servers, topic, events)
        print(
            f"{total} events ({unique} distinct) of {args.variations} variations produced in "
            f"{time.perf_counter() - began:.1f} s"
        )
        del events  # a projector holds no log: neither should the process timing it
        gc.collect()
        runs: dict[str, Callable[[str], Any]] = {
            "naive": lambda url: NaiveProjector(stack.bootstrap_servers, url, topic, lanes=1),
            "imagegen, 1 process": lambda url: Projector(stack.bootstrap_servers, url, topic),
            f"imagegen, {args.processes} processes": lambda url: ProjectorPool(
                stack.bootstrap_servers, url, topic, args.processes
            ),
        }
        if args.skip_naive:
            del runs["naive"]
        results = {}
        for i, (name, make) in enumerate(runs.items()):
            async with await psycopg.AsyncConnection.connect(stack.postgres.admin_url, autocommit=True) as admin:
                await admin.execute(f"create database replay_{i}")
            url = stack.database_url.rsplit("/", 1)[0] + f"/replay_{i}"
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await migrations.apply(conn)  # not timed: a rebuild makes its tables before replaying
            elapsed = await rebuild(make(url), unique)
            results[name] = (elapsed, url)
            print(f"{name:<24} {elapsed:7.2f} s  {total / elapsed:9,.0f} events/s")
        tables_of = {name: await tables(url) for name, (_, url) in results.items()}
        first, *others = tables_of
        for name in others:
            same = tables_of[first] == tables_of[name]
            for table in tables_of[first]:
                a, b = tables_of[first][table], tables_of[name][table]
                differ = [(x, y) for x, y in zip(a, b, strict=False) if x != y]
                if differ or len(a) != len(b):
                    print(f"{table}: {len(a)} vs {len(b)} rows; first difference: {differ[:1]}")
            print(f"{name}: same tables as {first}: {same}")
        if "naive" in results:
            for name in others:
                print(f"speed-up of {name} over naive: {results['naive'][0] / results[name][0]:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
