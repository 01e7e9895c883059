"""Stopping a worker gracefully, on the real broker, with a worker of its own logging JSON: told to
stop mid-drawing, it takes no new job and finishes the one in flight within SHUTDOWN_GRACE_S; with
too short a grace it releases the job at its next step, uncommitted, and the next worker draws it.
Either way the job completes exactly once. Every log line is a JSON object, and those about a job
carry its variation id, name and family."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from imagegen.devstack import DevStack
from imagegen.services import Services
from streams import codec, topics
from streams import messages as m
from tests.builders import generate_family, generation
from tests.conftest import ARTIFACTS
from tests.integration.kafka import produce, read_until

FAMILY = "hero"


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with DevStack(partitions=2) as running:
        yield running


def worker(stack: DevStack, run: str, **env: str) -> Services:
    env = {
        **stack.env(),
        "TORCH_THREADS": "1",
        "MODEL_CACHE_DIR": str(ARTIFACTS / "models"),
        "WORKER_FAMILIES": FAMILY,
        "LOG_FORMAT": "json",
        **env,
    }
    services = Services(env, ARTIFACTS / "logs" / "shutdown" / run)
    subprocess.run([sys.executable, "-m", "imagegen.cli", "topics"], env=services.env, check=True)
    services.spawn("worker", "worker")
    for line in ("Ready", "default model", "queue pauses read"):
        services.wait_for_log("worker", line, 90)
    return services


def job(name: str, steps: int) -> m.GenerateFamily:
    drawn = generation("a tram in the rain", 2, steps=steps)
    return generate_family(name, FAMILY, drawn, job_id=m.derive_id(m.variation_id(name), 1, FAMILY, 1))


async def drawing(servers: str, j: m.GenerateFamily) -> None:
    """Until the worker has reported a step of `j`."""
    await produce(servers, topics.family(FAMILY), j.key, codec.encode(j))
    await read_until(servers, topics.PROGRESS, lambda rs: bool(rs), lambda r: r.key == j.key)


async def outcomes(servers: str, j: m.GenerateFamily, done: int = 1) -> list[str]:
    records = await read_until(
        servers,
        topics.EVENTS,
        lambda rs: sum(json.loads(r.value)["type"] != "FamilyStarted" for r in rs) >= done,
        lambda r: r.key == j.key,
    )
    return [json.loads(r.value)["type"] for r in records]


def stopped(services: Services) -> tuple[int, list[dict]]:
    """SIGTERM the worker; its exit code and its log, one JSON object per line."""
    process = services.processes.pop("worker")
    process.terminate()
    code = process.wait(120)
    lines = (services.logs / "worker.log").read_text().splitlines()
    return code, [json.loads(line) for line in lines if line.strip()]


async def test_a_stopping_worker_finishes_the_job_in_flight(stack: DevStack) -> None:
    services = worker(stack, "finish")
    j = job("tram-finished", steps=40)
    await drawing(stack.bootstrap_servers, j)
    code, log = stopped(services)
    messages = [entry["message"] for entry in log]
    assert "stopping: the job in flight finished" in messages, messages[-20:]
    assert await outcomes(stack.bootstrap_servers, j) == ["FamilyStarted", "FamilyCompleted"]
    (completed,) = [e for e in log if e["message"].startswith(f"{FAMILY} completed of tram-finished")]
    assert (completed["variation_id"], completed["variation"], completed["family"]) == (
        str(j.variation_id),
        "tram-finished",
        FAMILY,
    )
    assert completed["service"] == "worker" and completed["level"] == "INFO" and "time" in completed
    assert not any("variation_id" in e for e in log if e["message"] == "stopping: the job in flight finished")
    print(f"\nworker exited {code} after finishing; {len(log)} JSON log lines")


async def test_a_worker_without_time_to_finish_releases_the_job_for_the_next(stack: DevStack) -> None:
    services = worker(stack, "release", SHUTDOWN_GRACE_S="0.5")
    j = job("tram-released", steps=150)
    await drawing(stack.bootstrap_servers, j)
    code, log = stopped(services)
    released = [e for e in log if "released at step" in e["message"]]
    assert released and released[0]["family"] == FAMILY, [e["message"] for e in log][-20:]
    print(f"\n{released[0]['message']}; worker exited {code}")
    # nothing was sent for it, and its offset was not committed: the next worker draws it
    services = worker(stack, "release-next")
    try:
        kinds = await outcomes(stack.bootstrap_servers, j)
    finally:
        services.stop()
    assert kinds.count("FamilyCompleted") == 1 and "FamilyFailed" not in kinds, kinds
