"""`imagegen queue list | clear` on the running stack: list shows the waiting and failed jobs; clear
gives up on them by posting commands, never by deleting history: a waiting job's variation is
cancelled (and the job skipped undrawn), a failed family is abandoned and can no longer be retried."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from streams import codec, topics
from streams import messages as m
from tests.builders import create_body, family_failed, generation_body
from tests.e2e.test_http import wait_for
from tests.integration.kafka import produce, read_until


def queue(services, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "imagegen.cli", "queue", *args],
        env={**services.env, "COLUMNS": "160"},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    print(run.stdout)
    return run.stdout


def rows(listing: str, variation: str) -> list[list[str]]:
    return [line.split() for line in listing.splitlines() if variation in line.split()]


async def test_clearing_waiting_and_failed_jobs_posts_commands_that_say_so(api: httpx.Client, services, stack) -> None:
    generation = generation_body("a harbour crane at night", 3)
    queue(services, "pause", "portrait")
    try:
        services.wait_for_log("worker", f"{topics.family('portrait')}: held: paused", 30)
        for name in ("clear-waits-1", "clear-waits-2", "clear-fails"):
            body = create_body(name, generation, families=["portrait"])
            assert api.post("/api/images/variations", json=body).status_code == 202
        for name in ("clear-waits-1", "clear-waits-2", "clear-fails"):
            wait_for(api, str(m.variation_id(name)), lambda v: bool(v["families"]))
        # one of them fails, as a crashed drawing would report it
        vid = m.variation_id("clear-fails")
        job = m.derive_id(vid, 1, "portrait", 1)
        failure = family_failed(vid, "portrait", job_id=job)
        await produce(stack.bootstrap_servers, topics.EVENTS, failure.key, codec.encode(failure))
        assert wait_for(api, str(vid))["status"] == "failed"

        listing = queue(services, "list", "portrait", "--failed")
        assert [r[0] for r in rows(listing, "clear-waits-1") + rows(listing, "clear-waits-2")] == ["waiting"] * 2
        assert rows(listing, "clear-fails")[0][0] == "failed"
        dry = queue(services, "clear", "portrait", "--waiting", "--failed", "--dry-run")
        assert "would cancel 2 variations and abandon 1 failed jobs" in dry
        done = queue(services, "clear", "portrait", "--waiting", "--failed")
        assert "cancelled 2 variations with waiting jobs, abandoned 1 failed jobs" in done
        for name in ("clear-waits-1", "clear-waits-2"):
            assert wait_for(api, str(m.variation_id(name)))["status"] == "cancelled"
        abandoned = wait_for(api, str(vid), lambda v: v["families"][0]["status"] == "abandoned")
        assert abandoned["status"] == "failed" and abandoned["families"][0]["error"] == "the drawing crashed"
        r = api.post(f"/api/images/variations/{vid}/families/portrait/retry")
        assert r.status_code == 409 and r.json()["errors"][0]["message"] == "abandoned"
        listing = queue(services, "list", "portrait", "--failed")
        assert not [r for n in ("clear-waits-1", "clear-waits-2", "clear-fails") for r in rows(listing, n)]
    finally:
        queue(services, "resume", "portrait")
    # once resumed, the cancelled variations' jobs are let go undrawn; the history says all of it
    key = str(m.variation_id("clear-waits-1")).encode()
    records = await read_until(
        stack.bootstrap_servers,
        topics.EVENTS,
        lambda rs: any(json.loads(r.value)["type"] == "FamilyCancelled" for r in rs),
        lambda r: r.key == key,
    )
    kinds = [json.loads(r.value)["type"] for r in records]
    assert kinds == ["VariationRequested", "VariationCancelled", "FamilyCancelled"], kinds
