"""Holding work on the real broker, with a worker of its own: peak hours hold normal jobs and let
DX jobs through; a pause holds a family's DX jobs too, outlives a worker restart, and ends with a
resume. Held jobs wait in the broker: the worker pauses their partitions."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest

from imagegen.devstack import DevStack
from imagegen.services import Services
from streams import clients, codec, topics
from streams import messages as m
from tests.builders import generate_family, generation
from tests.conftest import ARTIFACTS
from tests.integration.kafka import produce, read_until

FAMILY = "hero"
GEN = generation("a lantern on a jetty", 5)


@pytest.fixture(scope="module")
def worker() -> Iterator[Services]:
    """A broker, a database and one worker for `hero`, whose peak hours cover now."""
    now = m.utcnow()
    window = f"{now - timedelta(hours=2):%H:%M}-{now + timedelta(hours=2):%H:%M}"
    with DevStack(partitions=2) as stack:
        env = {
            **stack.env(),
            "TORCH_THREADS": "1",
            "MODEL_CACHE_DIR": str(ARTIFACTS / "models"),
            "WORKER_FAMILIES": FAMILY,
            "PEAK_HOURS": window,
            "PEAK_TIMEZONE": "UTC",
        }
        services = Services(env, ARTIFACTS / "logs" / "holding")
        subprocess.run([sys.executable, "-m", "imagegen.cli", "topics"], env=services.env, check=True)
        try:
            start(services)
            yield services
        finally:
            services.stop()


def start(services: Services) -> None:
    services.spawn("worker", "worker")
    for line in ("Ready", "default model", "queue pauses read"):
        services.wait_for_log("worker", line, 90)


def queue(services: Services, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "imagegen.cli", "queue", *args],
        env=services.env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def job(name: str, priority: m.Priority) -> m.GenerateFamily:
    return generate_family(name, FAMILY, GEN, job_id=m.derive_id(m.variation_id(name), 1, FAMILY, 1), priority=priority)


async def post(servers: str, *jobs: m.GenerateFamily) -> None:
    for j in jobs:
        await produce(servers, topics.family(FAMILY, priority=j.priority == "dx"), j.key, codec.encode(j))


async def started(servers: str, settle: float = 4.0) -> set[str]:
    """The job ids started so far, after `settle` seconds in which held jobs could have started."""
    await asyncio.sleep(settle)
    consumer = clients.reader(servers)
    await consumer.start()
    try:
        parts = await clients.partitions(consumer, topics.EVENTS)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen: set[str] = set()
        while batches := await consumer.getmany(timeout_ms=1000):
            for records in batches.values():
                seen |= {
                    e["job_id"] for e in map(json.loads, (r.value for r in records)) if e["type"] == "FamilyStarted"
                }
        return seen
    finally:
        await consumer.stop()


def servers(services: Services) -> str:
    return services.env["KAFKA_BOOTSTRAP_SERVERS"]


async def test_peak_hours_hold_normal_jobs_and_let_dx_jobs_through(worker: Services) -> None:
    normal, dx = [job("evening-1", "normal"), job("evening-2", "normal")], job("launch-now", "dx")
    await post(servers(worker), *normal, dx)
    await read_until(
        servers(worker), topics.EVENTS, lambda rs: any(json.loads(r.value)["type"] == "FamilyCompleted" for r in rs)
    )
    seen = await started(servers(worker))
    assert str(dx.job_id) in seen
    assert not {str(j.job_id) for j in normal} & seen  # still waiting in the broker
    log = (worker.logs / "worker.log").read_text()
    assert f"{topics.family(FAMILY)}: held: peak hours" in log
    # the operator sees them waiting, and why
    status = queue(worker, "status")
    print(f"\n$ imagegen queue status\n{status}")
    assert FAMILY in status and "peak hours: " in status and "(now in them)" in status
    (row,) = [line.split() for line in status.splitlines() if line.split()[:1] == [FAMILY]]
    assert row[1:5] == ["2", "0", "normal:", "peak"]


async def test_a_pause_holds_dx_jobs_too_outlives_a_restart_and_ends_with_a_resume(worker: Services) -> None:
    assert queue(worker, "pause", FAMILY) == f"paused: {FAMILY}"
    # the worker hears it within a second or so, and pauses the family's partitions
    worker.wait_for_log("worker", f"{topics.family(FAMILY, priority=True)}: held: paused", 30)
    dx = job("launch-later", "dx")
    await post(servers(worker), dx)
    assert str(dx.job_id) not in await started(servers(worker))
    (row,) = [line.split() for line in queue(worker, "status").splitlines() if line.split()[:1] == [FAMILY]]
    assert row[2:4] == ["1", "paused"]  # the DX job waits
    # a restarted worker reads the pause before it takes any job
    worker.stop("worker")
    start(worker)
    assert str(dx.job_id) not in await started(servers(worker))
    assert queue(worker, "resume", FAMILY) == f"resumed: {FAMILY}"
    assert str(dx.job_id) in await started(servers(worker), settle=6.0)
    # peak hours still hold the normal jobs
    assert not {str(job(f"evening-{i}", "normal").job_id) for i in (1, 2)} & await started(servers(worker), 0)
