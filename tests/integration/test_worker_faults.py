"""A worker killed mid-drawing, on the real broker with two workers sharing the same families, and the
projector writing the read model: both workers do work; `kill -9` one while it draws, and its
partitions move to the other, which draws the job again. No job is lost, and the read model has
exactly one result per family however many times a job was drawn."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from imagegen.devstack import DevStack
from imagegen.services import Services
from streams import codec, topics
from streams import messages as m
from tests.builders import create_variation, generation
from tests.conftest import ARTIFACTS
from tests.integration.kafka import produce, read_until
from tests.waiting import until_async

FAMILY = "hero"
JOBS = 8


def start(services: Services, *names: str) -> None:
    for name in names:
        services.spawn(name, "worker")
    for name in names:
        for line in ("Ready", "default model", "queue pauses read"):
            services.wait_for_log(name, line, 120)


@contextlib.contextmanager
def running(run: str, workers: int) -> Iterator[tuple[DevStack, Services]]:
    with DevStack(partitions=4) as stack:
        env = {
            **stack.env(),
            "TORCH_THREADS": "1",
            "MODEL_CACHE_DIR": str(ARTIFACTS / "models"),
            "WORKER_FAMILIES": FAMILY,
        }
        services = Services(env, ARTIFACTS / "logs" / "faults" / run)
        subprocess.run([sys.executable, "-m", "imagegen.cli", "topics"], env=services.env, check=True)
        try:
            services.spawn("projector", "projector")
            start(services, *(f"worker-{i}" for i in range(workers)))
            yield stack, services
        finally:
            services.stop()


@pytest.fixture
def one_worker() -> Iterator[tuple[DevStack, Services]]:
    with running("restart", 1) as both:
        yield both


@pytest.fixture
def two_workers() -> Iterator[tuple[DevStack, Services]]:
    with running("takeover", 2) as both:
        yield both


def create(name: str) -> m.CreateVariation:
    return create_variation(
        name,
        families=(FAMILY,),
        generation=generation("a ferry in fog", len(name), steps=40),
        command_id=m.derive_id("fault", name),
    )


def events(records) -> list[dict]:
    return [json.loads(r.value) for r in records]


def drawing(records) -> dict[str, int]:
    """The jobs started and not finished, and the pid of the worker drawing each."""
    started = {e["job_id"]: int(e["worker"].rsplit(":", 1)[1]) for e in events(records) if e["type"] == "FamilyStarted"}
    done = {e["job_id"] for e in events(records) if e["type"] in ("FamilyCompleted", "FamilyFailed")}
    return {job: pid for job, pid in started.items() if job not in done}


async def rows(database_url: str) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            """select v.name, v.status, f.status, (select count(*) from families g where g.variation_id = v.id)
               from variations v join families f on f.variation_id = v.id order by v.name"""
        )
        return await cur.fetchall()


async def kill_one_mid_drawing(stack: DevStack, services: Services, drew_first: int, restart: bool) -> str:
    """Post the jobs, kill -9 a worker while it draws (once `drew_first` workers have drawn), restart
    one if `restart`, and check that every job completes once. Returns the figures."""
    servers = stack.bootstrap_servers
    names = [f"ferry-{i}" for i in range(JOBS)]
    for name in names:
        command = create(name)
        await produce(servers, topics.COMMANDS, command.key, codec.encode(command))
    pids = {p.pid: name for name, p in services.processes.items() if name.startswith("worker")}

    def ready_to_kill(records) -> bool:
        drew = {e["worker"] for e in events(records) if e["type"] == "FamilyStarted"}
        return len(drew) >= drew_first and bool(drawing(records))

    records = await read_until(servers, topics.EVENTS, ready_to_kill, timeout=180)
    drew = {e["worker"] for e in events(records) if e["type"] == "FamilyStarted"}
    victim_job, victim_pid = next(iter(drawing(records).items()))
    victim = pids[victim_pid]
    killed_at = time.monotonic()
    os.kill(victim_pid, signal.SIGKILL)
    services.processes.pop(victim).wait(10)
    if restart:
        start(services, "worker-next")

    def complete(found: list[tuple]) -> bool:
        return len(found) == JOBS and all(r[1] == "completed" for r in found)

    async def read_model() -> list[tuple]:
        found = await rows(stack.database_url)
        if not complete(found):
            services.check()
        return found

    # 8 jobs of 40 steps; generous for a loaded 2-core machine
    found = await until_async(read_model, f"the {JOBS} variations completed", 120, every=0.5, done=complete)
    took = time.monotonic() - killed_at
    assert [r[:3] for r in found] == [(n, "completed", "completed") for n in sorted(names)], found
    assert all(r[3] == 1 for r in found)  # one row per family
    log = events(
        await read_until(
            servers, topics.EVENTS, lambda rs: sum(e["type"] == "VariationCompleted" for e in events(rs)) >= JOBS
        )
    )
    completions = Counter(e["event_id"] for e in log if e["type"] == "FamilyCompleted")
    conclusions = Counter(e["event_id"] for e in log if e["type"] == "VariationCompleted")
    redrawn = {e["worker"] for e in log if e["type"] == "FamilyStarted" and e["job_id"] == victim_job}
    assert len(completions) == JOBS and len(conclusions) == JOBS
    assert len(redrawn) == 2, "the killed worker's job was drawn again, by another worker"
    return (
        f"{JOBS} jobs submitted, {len(drew)} workers drawing, {victim} killed mid-drawing; {len(completions)} "
        f"completed ({sum(completions.values())} FamilyCompleted records, "
        f"{sum(completions.values()) - len(completions)} duplicates dropped by id), {len(conclusions)} "
        f"variations concluded, all complete {took:.1f} s after the kill"
    )


async def test_a_worker_killed_mid_drawing_and_restarted_completes_every_job_once(one_worker) -> None:
    print("\n" + await kill_one_mid_drawing(*one_worker, drew_first=1, restart=True))


async def test_the_other_worker_takes_over_a_killed_worker_s_partitions(two_workers) -> None:
    print("\n" + await kill_one_mid_drawing(*two_workers, drew_first=2, restart=False))
