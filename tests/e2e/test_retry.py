"""Retrying one family over HTTP: only the failed family is drawn again, and the variation completes
when it succeeds. The failure is made the way a crashed drawing would leave it: the family's queue is
paused, a FamilyFailed for its job is posted to the log, and the queue is resumed."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import httpx

from streams import codec, topics
from streams import messages as m
from tests.builders import create_body, family_failed, generation_body
from tests.e2e.test_http import wait_for
from tests.integration.kafka import produce, read_until

NAME = "retry-harbour"


def queue(services, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "imagegen.cli", "queue", *args], env=services.env, check=True, capture_output=True
    )


def jobs_started(records) -> list[str]:
    return [e["job_id"] for e in map(json.loads, (r.value for r in records)) if e["type"] == "FamilyStarted"]


async def left_partial(api: httpx.Client, services, stack, name: str, prompt: str) -> uuid.UUID:
    """A variation of `square` and `portrait` left partial: the square completes while the portrait's queue
    is paused, then the portrait's drawing fails as a crashed one is reported (once the variation is in the
    log, so the aggregate has it). Returns its id once the paused job, drawn after all, has started: its
    outcome is not the first, so the family stays failed."""
    vid = m.variation_id(name)
    portrait_job = m.derive_id(vid, 1, "portrait", 1)
    queue(services, "pause", "portrait")
    try:
        services.wait_for_log("worker", f"{topics.family('portrait')}: held: paused", 30)
        body = create_body(name, generation_body(prompt, 9), families=["square", "portrait"])
        assert api.post("/api/images/variations", json=body).status_code == 202
        wait_for(api, str(vid), lambda v: any(f["status"] == "completed" for f in v["families"]))
        failure = family_failed(vid, "portrait", job_id=portrait_job)
        await produce(stack.bootstrap_servers, topics.EVENTS, failure.key, codec.encode(failure))
        partial = wait_for(api, str(vid))
        assert partial["status"] == "partial", partial
    finally:
        queue(services, "resume", "portrait")
    await read_until(
        stack.bootstrap_servers,
        topics.EVENTS,
        lambda rs: str(portrait_job) in jobs_started(rs),
        lambda r: r.key == str(vid).encode(),
    )
    return vid


async def test_retrying_a_failed_family_redraws_only_it(api: httpx.Client, services, stack) -> None:
    vid = await left_partial(api, services, stack, NAME, "a harbour at dawn")
    key = str(vid).encode()
    assert api.post(f"/api/images/variations/{vid}/families/square/retry").status_code == 409
    r = api.post(f"/api/images/variations/{vid}/families/hero/retry")
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "family"

    r = api.post(f"/api/images/variations/{vid}/families/portrait/retry")
    assert r.status_code == 202, r.text
    done = wait_for(api, str(vid), lambda v: v["status"] in ("completed", "failed"))
    assert done["status"] == "completed", done
    assert {f["name"]: f["status"] for f in done["families"]} == {"square": "completed", "portrait": "completed"}
    records = await read_until(
        stack.bootstrap_servers,
        topics.EVENTS,
        lambda rs: any(json.loads(r.value)["type"] == "VariationCompleted" for r in rs),
        lambda r: r.key == key,
    )
    started = jobs_started(records)
    assert started.count(str(m.derive_id(vid, 1, "square", 1))) == 1  # the square was not drawn again
    assert str(m.derive_id(vid, 1, "portrait", 2)) in started  # the portrait's second attempt
