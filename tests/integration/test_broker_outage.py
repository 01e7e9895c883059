"""The broker stops answering while commands are posted, on the real broker and an api process of its
own: each post meanwhile gets a 503 with Retry-After and a message saying what to do, never a 500;
once the broker answers again, posting works; and every command that was answered 202 is in the
command log. (The broker is frozen with SIGSTOP: it neither answers nor refuses, the hardest case for a
client; a broker killed under load is tests/integration/test_broker_loss.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from imagegen.devstack import DevStack
from imagegen.services import Services
from streams import topics
from tests.builders import create_body, generation_body
from tests.conftest import ARTIFACTS
from tests.integration.kafka import read_until
from tests.waiting import until


@pytest.fixture
def api() -> Iterator[tuple[DevStack, httpx.Client]]:
    with DevStack(partitions=1) as stack:
        services = Services(stack.env(), ARTIFACTS / "logs" / "broker-outage")
        subprocess.run([sys.executable, "-m", "imagegen.cli", "topics"], env=services.env, check=True)
        services.spawn("projector", "projector")  # it applies the read model's migrations
        services.spawn("api", "api")
        try:
            services.wait_for_api(60)
            services.wait_for_log("projector", "projecting", 60)
            with httpx.Client(base_url=services.api_url, timeout=60) as client:
                yield stack, client
        finally:
            services.stop()


def body(name: str) -> dict:
    return create_body(name, generation_body("a lighthouse at dusk", 5, model=None, steps=None))


def post(client: httpx.Client, name: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    r = client.post("/api/images/variations", json=body(name))
    return r, time.monotonic() - started


async def test_a_frozen_broker_gets_503s_and_every_accepted_command_is_in_the_log(api) -> None:
    stack, client = api
    accepted = []
    r, _ = post(client, "before-outage")
    assert r.status_code == 202, r.text
    accepted.append(r.json()["commandId"])

    os.kill(stack.broker.pid, signal.SIGSTOP)
    try:
        refused = [post(client, f"during-outage-{i}") for i in range(2)]
        assert client.get("/api/images/health").status_code == 200  # reads go on: they need only Postgres
    finally:
        os.kill(stack.broker.pid, signal.SIGCONT)
    for r, _ in refused:
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "5"
        assert r.json()["status"] == 503 and "retry the same request" in r.json()["message"]

    resumed_at, tries = time.monotonic(), 0

    def posted() -> httpx.Response | None:  # the producer reconnects: the first posts after may be refused
        nonlocal tries
        tries += 1
        r, _ = post(client, f"after-outage-{tries}")
        assert r.status_code in (202, 503), r.text
        return r if r.status_code == 202 else None

    r = until(posted, "a post accepted after the outage", 60, every=0)
    accepted.append(r.json()["commandId"])
    back_after = time.monotonic() - resumed_at

    logged = await read_until(
        stack.bootstrap_servers,
        topics.COMMANDS,
        lambda rs: {json.loads(x.value)["command_id"] for x in rs} >= set(accepted),
    )
    ids = [json.loads(x.value)["command_id"] for x in logged]
    assert all(ids.count(c) == 1 for c in accepted)
    # a 503 says the broker did not confirm in time, not that nothing landed: a frozen broker may write the
    # command when it resumes (the message says so, and a repeat of the same create is dropped by its id)
    unconfirmed = len(ids) - len(accepted)
    print(
        f"\nbroker frozen: {len(refused)} posts answered 503 (Retry-After 5) in "
        f"{', '.join(f'{t:.1f} s' for _, t in refused)}; posting worked again {back_after:.1f} s after the broker "
        f"resumed ({tries} tries); {len(accepted)} commands answered 202, {len(accepted)} in the command log; "
        f"{unconfirmed} of the {len(refused)} answered 503 landed once the broker resumed"
    )
