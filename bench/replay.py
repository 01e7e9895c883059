"""Replay benchmark: rebuild the read model from a realistic event log on the test broker, imagegen's
projector against a naive one (bench/naive_projector.py: a savepoint and statements per event), in one
run, into fresh databases, and check that both give the same tables.

The log: variations of one to three families, each family started and completed (one in twenty fails,
one in ten variations is regenerated), about five events per variation, and one event in fifty
delivered twice, as at-least-once delivery may.

    .venv/bin/python bench/replay.py                       # 20,000 variations, about 100,000 events
    .venv/bin/python bench/replay.py --variations 2000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import naive_projector
from imagegen.devstack import DevStack
from projections.projector import Projector
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
                    events.append(m.FamilyFailed(event_id=m.derive_id(job, "failed"), error_kind="OutOfMemoryError",
                                                 message=failed[family], retryable=True, **about))  # fmt: skip
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
        name=name, key=f"{variation}/{name}.webp", url=f"https://img.example.com/api/images/{variation}/{name}",
        width=side, height=side, bytes=48_213, crop=(0, 0, 1024, 1024) if crop else None,
        crop_reason="face" if crop else None, crop_clear=True if crop else None, scale=side / 1024 if crop else None,
    )  # fmt: skip


async def produce(servers: str, topic: str, events: list[m.Event]) -> None:
    # one record per batch: the test broker miscounts offsets after multi-record batches
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=20, enable_idempotence=False)
    await producer.start()
    try:
        sent = [await producer.send(topic, key=e.key, value=m.encode(e)) for e in events]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


class NaiveProjector(Projector):
    async def apply(self, conn: Any, batch: Any, last: Any, dead_letter: Any) -> None:
        async with conn.transaction():
            self.applied += await naive_projector.apply(conn, [event for _, event in batch])
            await conn.execute(
                """insert into projection_positions (topic, partition, next_offset) values (%s, %s, %s)
                   on conflict (topic, partition) do update set next_offset = excluded.next_offset""",
                (last.topic, last.partition, last.offset + 1),
            )


async def rebuild(projector: Projector, unique: int) -> float:
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
            names = [c.name for c in cur.description or ()]
            keep = [i for i, n in enumerate(names) if n != "completed_event"]  # the batch projector's marker
            out[table] = [tuple(row[i] for i in keep) for row in await cur.fetchall()]
        return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variations", type=int, default=20_000)
    args = parser.parse_args()
    events = history(args.variations)
    unique = len({e.event_id for e in events})
    with DevStack(partitions=4) as stack:
        topic = "bench.events"
        began = time.perf_counter()
        await produce(stack.bootstrap_servers, topic, events)
        print(f"{len(events)} events ({unique} distinct) of {args.variations} variations produced in "
              f"{time.perf_counter() - began:.1f} s")  # fmt: skip
        results = {}
        for name, kind in (("naive", NaiveProjector), ("imagegen", Projector)):
            async with await psycopg.AsyncConnection.connect(stack.postgres.admin_url, autocommit=True) as admin:
                await admin.execute(f"create database replay_{name}")
            url = stack.database_url.rsplit("/", 1)[0] + f"/replay_{name}"
            elapsed = await rebuild(kind(stack.bootstrap_servers, url, topic), unique)
            results[name] = (elapsed, url)
            print(f"{name:<9} {elapsed:7.2f} s  {len(events) / elapsed:9,.0f} events/s")
        naive, ours = await tables(results["naive"][1]), await tables(results["imagegen"][1])
        same = naive == ours
        for table in naive:
            differ = [(a, b) for a, b in zip(naive[table], ours[table], strict=False) if a != b]
            if differ or len(naive[table]) != len(ours[table]):
                print(f"{table}: {len(naive[table])} vs {len(ours[table])} rows; first difference: {differ[:1]}")
        print(f"speed-up {results['naive'][0] / results['imagegen'][0]:.1f}x; same tables: {same}")


if __name__ == "__main__":
    asyncio.run(main())
