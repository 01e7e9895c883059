"""Following a variation as it is drawn (server-sent events), and cancelling one mid-way, over HTTP on
the running stack: the steps of each family arrive in order between its start and its end; a
cancelled drawing stops at a denoising step, a job not started is skipped, and nothing is stored."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from streams import messages as m
from streams import topics
from tests.builders import create_body, generation_body
from tests.e2e.test_retry import queue
from tests.waiting import until_async

Until = Callable[[list[ServerSentEvent]], bool]


class Follower:
    """The SSE stream of one variation, read in the background until `until` says so."""

    def __init__(self, client: httpx.AsyncClient, vid: str, until: Until) -> None:
        self.events: list[ServerSentEvent] = []
        self.connected = asyncio.Event()
        self._task = asyncio.create_task(self._read(client, vid, until))

    async def _read(self, client: httpx.AsyncClient, vid: str, until: Until) -> None:
        async with aconnect_sse(client, "GET", f"/api/images/variations/{vid}/live", timeout=None) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            self.connected.set()
            async for event in source.aiter_sse():
                self.events.append(event)
                if until(self.events):
                    return

    async def wait(self, timeout: float = 120.0) -> list[ServerSentEvent]:
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.events

    async def until(self, seen: Until, timeout: float = 120.0) -> None:
        async def streamed() -> list[ServerSentEvent]:
            if self._task.done() and not seen(self.events):
                self._task.result()  # the stream's own error, if any
                raise AssertionError(f"the stream ended first: {[e.event for e in self.events]}")
            return self.events

        await until_async(streamed, "the events awaited", timeout, every=0.05, done=seen)


def of(events: list[ServerSentEvent], kind: str) -> list[dict]:
    return [json.loads(e.data) for e in events if e.event == kind]


def concluded(events: list[ServerSentEvent]) -> bool:
    return any(
        e.event in ("VariationCompleted", "VariationPartial", "VariationFailed", "VariationCancelled") for e in events
    )


@pytest.fixture
async def client(services):
    async with httpx.AsyncClient(base_url=services.api_url, timeout=30) as c:
        yield c


async def test_a_followed_variation_streams_each_family_s_steps_in_order(client: httpx.AsyncClient) -> None:
    name = "live-lanterns"
    vid = str(m.variation_id(name))
    follower = Follower(client, vid, concluded)  # listening before the variation exists
    await asyncio.wait_for(follower.connected.wait(), 30)
    generation = generation_body("paper lanterns over a river", 4, steps=6)
    r = await client.post("/api/images/variations", json=create_body(name, generation, families=["square", "hero"]))
    assert r.status_code == 202, r.text
    events = await follower.wait()
    kinds = [e.event for e in events]
    assert "snapshot" not in kinds  # nothing to show before it was requested
    assert kinds[0] == "VariationRequested" and kinds[-1] == "VariationCompleted", kinds
    for family in ("square", "hero"):
        steps = [p["step"] for p in of(events, "FamilyProgress") if p["family"] == family]
        assert steps == [1, 2, 3, 4, 5, 6], (family, steps)
        mine = [i for i, e in enumerate(events) if json.loads(e.data).get("family") == family]
        assert events[mine[0]].event == "FamilyStarted" and events[mine[-1]].event == "FamilyCompleted"
        # the picture forming: a preview every 4 steps (PREVIEW_EVERY_STEPS), right after its step
        previews = [p for p in of(events, "FamilyPreview") if p["family"] == family]
        assert [p["step"] for p in previews] == [4] and previews[0]["steps"] == 6, family
        served = await client.get(f"/api/images/variations/{vid}/families/{family}/preview")
        assert served.status_code == 200 and served.headers["content-type"] == "image/webp"
        assert served.headers["x-preview-step"] == "4/6" and served.content[8:12] == b"WEBP"
        assert served.content == base64.b64decode(previews[0]["image"])
        ordered = [
            (e.event, json.loads(e.data)["step"])
            for e in events
            if e.event in ("FamilyProgress", "FamilyPreview") and json.loads(e.data)["family"] == family
        ]
        assert ordered.index(("FamilyPreview", 4)) == ordered.index(("FamilyProgress", 4)) + 1
    unseen = await client.get(f"/api/images/variations/{vid}/families/portrait/preview")
    assert unseen.status_code == 404 and "no preview" in unseen.json()["message"]

    # a stream opened once the read model has caught up starts with its view
    async def view() -> dict:
        return (await client.get(f"/api/images/variations/{vid}")).json()

    await until_async(view, f"{name} completed", 60, done=lambda v: v["status"] == "completed")
    late = Follower(client, vid, lambda es: len(es) >= 1)
    (snapshot,) = of(await late.wait(), "snapshot")
    assert snapshot["status"] == "completed" and {f["name"] for f in snapshot["families"]} == {"square", "hero"}


async def test_a_cancelled_variation_stops_mid_drawing_and_skips_the_job_not_started(
    client: httpx.AsyncClient, services
) -> None:
    name = "cancel-comet"
    vid = str(m.variation_id(name))
    steps = 150  # the most a request may ask: long enough to be cancelled mid-way on a CPU
    follower = Follower(client, vid, lambda es: bool(of(es, "VariationCancelled")) and bool(of(es, "FamilyCancelled")))
    await asyncio.wait_for(follower.connected.wait(), 30)
    await asyncio.to_thread(queue, services, "pause", "square")  # the square's job waits, not started
    try:
        await asyncio.to_thread(services.wait_for_log, "worker", f"{topics.family('square')}: held: paused", 30)
        generation = generation_body("a comet over snow", 5, steps=steps)
        r = await client.post("/api/images/variations", json=create_body(name, generation, families=["hero", "square"]))
        assert r.status_code == 202, r.text
        await follower.until(lambda es: any(p["step"] >= 3 for p in of(es, "FamilyProgress")))
        r = await client.post(f"/api/images/variations/{vid}/cancel")
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "cancelling"
        events = await follower.wait()
    finally:
        await asyncio.to_thread(queue, services, "resume", "square")
    (cancelled,) = of(events, "VariationCancelled")
    assert set(cancelled["families"]) == {"hero", "square"}
    (hero,) = of(events, "FamilyCancelled")
    last = max(p["step"] for p in of(events, "FamilyProgress"))
    print(f"\ncancelled at step {hero['at_step']} of {hero['steps']} (last step reported {last})")
    assert hero["family"] == "hero" and 3 <= hero["at_step"] < steps and last <= hero["at_step"]

    # the square's job, taken once resumed, is let go without being drawn
    async def view() -> dict:
        return (await client.get(f"/api/images/variations/{vid}")).json()

    def let_go(found: dict) -> bool:
        families = {f["name"]: f for f in found["families"]}
        square, hero = families["square"]["error"], families["hero"]["error"]
        return square == "cancelled before drawing" and hero.startswith("stop")

    found = await until_async(view, "both families let go", 120, done=let_go)
    families = {f["name"]: f for f in found["families"]}
    assert found["status"] == "cancelled", found
    assert families["hero"]["status"] == families["square"]["status"] == "cancelled"
    assert families["hero"]["error"] == f"stopped at step {hero['at_step']} of {steps}"
    assert families["square"]["error"] == "cancelled before drawing" and families["square"]["startedAt"] is None
    assert (await client.get(f"/api/images/{name}/hero")).status_code == 404  # nothing stored
    r = await client.post(f"/api/images/variations/{vid}/cancel")
    assert r.status_code == 409 and r.json()["errors"][0]["message"] == "cancelled"


def test_generate_follow_shows_each_family_s_bar_then_prints_the_urls(services) -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "imagegen.cli",
            "generate",
            "follow-fjord",
            "--prompt",
            "a fjord at dusk",
            "--families",
            "square,landscape",
            "--model",
            "tiny",
            "--steps",
            "5",
            "--seed",
            "8",
            "--follow",
            "--api",
            services.api_url,
        ],
        env={**services.env, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(run.stderr, run.stdout)
    assert run.returncode == 0, run.stderr
    assert "accepted: follow-fjord" in run.stderr
    for family in ("square", "landscape"):  # each bar ends full, with its time
        assert any(
            line.split()[:1] == [family] and "5/5" in line and "done in" in line for line in run.stderr.splitlines()
        ), run.stderr
    assert "follow-fjord" in run.stdout and ": completed" in run.stdout
    assert f"{services.api_url}/api/images/follow-fjord/square" in run.stdout
    vid = m.variation_id("follow-fjord")  # and, while it drew, where to watch each family form
    for family in ("square", "landscape"):
        where = f"{family}: forming at {services.api_url}/api/images/variations/{vid}/families/{family}/preview"
        assert where in " ".join(run.stderr.split()), run.stderr
