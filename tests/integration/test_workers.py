"""Heartbeats into the read model: live while heard from, stale after three intervals, and an older
beat (a replay) never overwrites a newer one."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg

from projections import migrations, views, workers
from streams import messages as m
from streams import operational


def beat(worker: str, age_s: float, families=("square",), interval_s: float = 5.0) -> operational.WorkerHeartbeat:
    return operational.WorkerHeartbeat(
        worker=worker,
        families=families,
        models_loaded=("tiny",),
        device="cpu",
        free_memory_bytes=1 << 30,
        interval_s=interval_s,
        sent_at=m.utcnow() - timedelta(seconds=age_s),
    )


async def test_a_worker_is_live_while_heard_from_and_stale_after_three_intervals(stack):
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(stack.postgres.admin_url, autocommit=True) as admin:
        await admin.execute(f"create database {name}")
    url = stack.database_url.rsplit("/", 1)[0] + "/" + name
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrations.apply(conn)
        await workers.record(conn, [beat("gpu-1", age_s=1), beat("gpu-2", age_s=16, families=("hero",))])
        heard = {w["worker"]: w for w in await views.workers(conn)}
        assert heard["gpu-1"]["live"] and heard["gpu-1"]["families"] == ["square"]
        assert not heard["gpu-2"]["live"] and heard["gpu-2"]["secondsSinceSeen"] >= 16
        # gpu-2 comes back; then an old beat of it is replayed and changes nothing
        await workers.record(conn, [beat("gpu-2", age_s=0, families=("hero",))])
        await workers.record(conn, [beat("gpu-2", age_s=60, families=("hero",))])
        heard = {w["worker"]: w for w in await views.workers(conn)}
        assert heard["gpu-2"]["live"] and heard["gpu-2"]["secondsSinceSeen"] < 5
