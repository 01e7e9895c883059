"""API keys, scopes, rate limits and the body limit, end to end: two more api processes on the session's
stack (its worker and projector draw and record), started with keys configured: one with public images, a
tiny submit limit (3 a minute per key) and a 1 KiB body limit; one with IMAGE_ACCESS=read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from api.access import new_key
from imagegen.devstack import DevStack, free_port
from imagegen.services import Services
from tests.builders import create_body, generation_body
from tests.conftest import ARTIFACTS
from tests.waiting import until

KEYS = {
    name: new_key(name, scope)
    for name, scope in (
        ("cms", "read"),
        ("ci", "submit"),
        ("ops", "admin"),
        ("burst", "submit"),
        ("uploader", "submit"),
    )
}
NAME = f"access-{uuid.uuid4().hex[:8]}"
BODY = create_body(NAME, generation_body("a lighthouse at dawn", 7))


def api_process(stack: DevStack, name: str, **env: str) -> Iterator[httpx.Client]:
    port = free_port()
    entries = ",".join(entry for _, entry in KEYS.values())
    settings = {**stack.env(), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "API_KEYS": entries, **env}
    services = Services(settings, ARTIFACTS / "logs" / "access", api_port=port)
    try:
        services.spawn(name, "api")
        services.wait_for_api(90)  # through GET /health, which needs no key
        with httpx.Client(base_url=services.api_url, timeout=30) as client:
            client.services = services  # type: ignore[attr-defined]
            yield client
    finally:
        services.stop()


@pytest.fixture(scope="module")
def keyed(stack: DevStack, services: Services) -> Iterator[httpx.Client]:
    # `services`: the session's worker and projector draw and record what this api accepts
    yield from api_process(stack, "api-keys", RATE_LIMIT_SUBMIT="3/minute", MAX_BODY_BYTES="1024")


@pytest.fixture(scope="module")
def private(stack: DevStack, services: Services) -> Iterator[httpx.Client]:
    yield from api_process(stack, "api-private-images", IMAGE_ACCESS="read")


def key(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name][0]}"}


@pytest.fixture(scope="module")
def drawn(keyed: httpx.Client) -> dict:
    accepted = keyed.post("/api/images/variations", json=BODY, headers=key("ci"))
    assert accepted.status_code == 202, accepted.text

    def shown() -> dict | None:
        keyed.services.check()
        found = keyed.get(f"/api/images/variations/{accepted.json()['id']}", headers=key("cms"))
        return (
            found.json()
            if found.status_code == 200 and found.json()["status"] in ("completed", "partial", "failed")
            else None
        )

    return until(shown, f"{NAME} drawn", 180, every=0.2)


def test_health_is_open_and_without_a_valid_key_the_rest_is_401_with_a_bearer_challenge(keyed):
    assert keyed.get("/api/images/health").status_code == 200
    missing = keyed.get("/api/images/variations")
    wrong = keyed.get("/api/images/variations", headers={"Authorization": "Bearer igk_guessed"})
    nowhere = keyed.delete("/api/images/no/such/route")
    challenge = missing.headers["www-authenticate"]
    print(
        f"\nno key: {missing.status_code} WWW-Authenticate {challenge!r}; wrong key: {wrong.status_code} "
        f"{wrong.headers['www-authenticate']!r}; unknown route: {nowhere.status_code}"
    )
    assert missing.status_code == wrong.status_code == nowhere.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["errors"] == [{"field": "authorization", "message": "missing"}]
    assert wrong.json()["errors"] == [{"field": "authorization", "message": "not a known key"}]


def test_a_read_key_lists_and_follows_but_may_not_submit(keyed, drawn):
    listed = keyed.get("/api/images/variations", headers=key("cms"))
    assert listed.status_code == 200 and "items" in listed.json()
    assert keyed.get("/api/images/variations", headers={"X-API-Key": KEYS["cms"][0]}).status_code == 200
    limit, remaining, reset = (listed.headers[f"ratelimit-{h}"] for h in ("limit", "remaining", "reset"))
    print(f"\nread key lists: RateLimit-Limit {limit}, -Remaining {remaining}, -Reset {reset} s")
    # the server-sent events pass through the middleware: the variation's snapshot comes first
    with keyed.stream("GET", f"/api/images/variations/{drawn['id']}/live", headers=key("cms")) as live:
        assert live.status_code == 200 and live.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in live.iter_lines() if line.startswith(("event:", ": ping")))
    assert first == "event: snapshot"  # not a ping 15 s later
    refused = keyed.post("/api/images/variations", json=BODY, headers=key("cms"))
    print(f"read key POST: {refused.status_code} {refused.json()['message']}")
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="submit"'


def test_a_submit_key_creates_and_the_images_are_public_unless_configured_private(keyed, private, drawn):
    assert drawn["status"] == "completed", drawn
    path = urlsplit(drawn["families"][0]["publicUrl"]).path
    public = keyed.get(path)
    closed = private.get(path)
    opened = private.get(path, headers=key("cms"))
    print(
        f"\n{NAME} drawn through a submit key; {path}: without a key {public.status_code} ({len(public.content)} "
        f"bytes), with IMAGE_ACCESS=read {closed.status_code}, with a read key {opened.status_code}"
    )
    assert public.status_code == 200 and public.headers["content-type"] == "image/webp"
    assert closed.status_code == 401 and opened.status_code == 200 and opened.content == public.content
    assert private.get("/api/images/health").status_code == 200
    log = (ARTIFACTS / "logs" / "access" / "api-keys.log").read_text()
    assert "POST /api/images/variations by key 'ci': 202" in log and KEYS["ci"][0] not in log


def test_only_an_admin_key_manages_webhooks(keyed):
    hook = {"url": "http://127.0.0.1:9/access-story", "events": ["IMAGE_VARIATION_COMPLETED"]}
    assert keyed.post("/api/images/webhooks", json=hook, headers=key("ci")).status_code == 403
    created = keyed.post("/api/images/webhooks", json=hook, headers=key("ops"))
    assert created.status_code == 201, created.text
    listed = keyed.get("/api/images/webhooks", headers=key("cms")).json()["items"]
    assert created.json()["id"] in [h["id"] for h in listed]
    where = f"/api/images/webhooks/{created.json()['id']}"
    assert keyed.delete(where, headers=key("ci")).status_code == 403
    assert keyed.delete(where, headers=key("ops")).status_code == 204
    print("\nwebhooks: submit key 403 on POST and DELETE; admin key 201 then 204; read key lists")


def test_a_key_over_its_limit_gets_429_with_retry_after_and_the_other_keys_do_not(keyed):
    cancel = f"/api/images/variations/{uuid.uuid4()}/cancel"  # no such variation: 404, which counts all the same
    answers = [keyed.post(cancel, headers=key("burst")) for _ in range(4)]
    statuses = [a.status_code for a in answers]
    last = answers[-1]
    print(
        f"\n{statuses[:3].count(404)} let through (404: no such variation), then {last.status_code} Retry-After "
        f"{last.headers['retry-after']} s ({last.json()['message']})"
    )
    assert statuses == [404, 404, 404, 429]
    assert 1 <= int(last.headers["retry-after"]) <= 60 and last.headers["ratelimit-remaining"] == "0"
    assert keyed.post(cancel, headers=key("ci")).status_code == 404  # another key, its own window
    assert keyed.get("/api/images/variations", headers=key("burst")).status_code == 200  # reads: another limit


def test_a_body_over_the_limit_is_413_whether_declared_or_chunked(keyed):
    big = {**BODY, "name": f"{NAME}-big", "generation": {**BODY["generation"], "prompt": "a lighthouse " * 100}}
    declared = keyed.post("/api/images/variations", json=big, headers=key("uploader"))

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "' + b"x" * 800
        yield b"x" * 800 + b'"}'

    chunked = keyed.post(
        "/api/images/variations", content=chunks(), headers={**key("uploader"), "content-type": "application/json"}
    )
    assert "content-length" not in chunked.request.headers
    print(
        f"\nbody over 1024 bytes: with Content-Length {declared.status_code}, chunked {chunked.status_code} "
        f"({chunked.json()['message']})"
    )
    assert declared.status_code == chunked.status_code == 413
    assert chunked.json()["errors"] == [{"field": "body", "message": "at most 1024 bytes"}]
