"""API keys, scopes, rate limits and the body limit (api/access.py): the pure parts, then the real
middleware in front of a small Starlette app with endpoints like the API's, through Starlette's
TestClient. The stack-backed story is tests/e2e/test_access.py."""

from __future__ import annotations

import hashlib

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from api import access
from api.access import SCOPES, AccessConfigError, digest, find, implies, needed, new_key, parse_keys
from imagegen.config import Settings


def test_admin_implies_submit_implies_read_and_never_the_other_way():
    table = {held: [n for n in SCOPES if implies(held, n)] for held in SCOPES}
    print("\n" + "\n".join(f"  {held:<6} may {', '.join(allowed)}" for held, allowed in table.items()))
    assert table == {"read": ["read"], "submit": ["read", "submit"], "admin": ["read", "submit", "admin"]}


def test_a_new_key_is_random_and_its_entry_holds_only_its_sha256():
    key, entry = new_key("ci-bot", "submit")
    other, _ = new_key("ci-bot", "submit")
    print(f"\n  key {key[:8]}… ({len(key)} characters), entry {entry[:24]}…")
    assert key.startswith("igk_") and len(key) >= 40 and key != other
    assert key not in entry
    assert entry == f"ci-bot:submit:{hashlib.sha256(key.encode()).hexdigest()}"
    (parsed,) = parse_keys(entry)
    assert (parsed.name, parsed.scope, parsed.digest) == ("ci-bot", "submit", digest(key))


def test_keys_parse_from_commas_or_lines_with_comments():
    a, b, c = (new_key(name, scope) for name, scope in (("cms", "read"), ("ci", "submit"), ("ops", "admin")))
    text = f"{a[1]}, {b[1]}\n# the operators\n{c[1]}  # rotated in May\n\n"
    keys = parse_keys(text)
    assert [(k.name, k.scope) for k in keys] == [("cms", "read"), ("ci", "submit"), ("ops", "admin")]
    assert parse_keys("") == () and parse_keys(" , \n# none yet\n") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("cms:read", "entry 1 is not name:scope:sha256hex"),
        ("cms:read:" + "a" * 64 + ":extra", "entry 1 is not name:scope:sha256hex"),
        ("c m s:read:" + "a" * 64, "entry 1 is not name:scope:sha256hex"),
        ("cms:write:" + "a" * 64, "key 'cms' has scope 'write'; scopes: read, submit, admin"),
        ("cms:read:igk_a-plaintext-key-pasted-by-mistake", "key 'cms': the hash is not a SHA-256"),
        ("cms:read:" + "a" * 64 + ",cms:admin:" + "b" * 64, "key name 'cms' is given twice"),
    ],
)
def test_a_bad_entry_is_refused_naming_it_without_repeating_its_hash(text, says):
    with pytest.raises(AccessConfigError, match=says) as refused:
        parse_keys(text)
    print(f"\n  {refused.value}")
    assert "pasted" not in str(refused.value) and "a" * 64 not in str(refused.value)


def test_a_presented_key_is_found_by_its_hash_among_all_and_a_wrong_one_is_not():
    made = [new_key(f"k{i}", "read") for i in range(5)]
    keys = parse_keys(",".join(entry for _, entry in made))
    assert [find(keys, key).name for key, _ in made] == ["k0", "k1", "k2", "k3", "k4"]
    assert find(keys, made[0][0] + "x") is None and find(keys, "") is None and find((), made[0][0]) is None


def test_every_route_needs_a_scope_and_none_that_changes_anything_is_left_to_the_default():
    from starlette.routing import Mount as Mounted

    from api.routes import routes, scopes

    routes, table_of = routes(), scopes()

    def flat(routes, prefix=""):  # (path, route) for every route, the mounts' own routes in them
        for route in routes:
            if isinstance(route, Mounted) and route.routes:
                yield from flat(route.routes, prefix + route.path)
            else:
                yield prefix + route.path, route

    table = []
    for path, route in flat(routes):
        for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"}):
            concrete = path.replace("{id}", "0c5e").replace("{family}", "square") or "/"
            scope = {
                "type": "http",
                "method": method,
                "path": concrete + ("/" if path == "/gallery" else ""),
                "root_path": "",
            }
            table.append(
                (
                    method,
                    path.removeprefix("/api/images") or "/",
                    needed(routes, scope, table_of),
                    (route.app if isinstance(route, Mounted) else route.endpoint) in table_of,
                )
            )
    print("\n" + "\n".join(f"  {m:<6} {p:<42} {n}{'' if listed else ' (default)'}" for m, p, n, listed in table))
    assert not [(m, p) for m, p, _, listed in table if m != "GET" and not listed]
    need = {(m, p): n for m, p, n, _ in table}
    assert need["GET", "/health"] == "open" and need["GET", "/{variation}/{name}"] == "images"
    assert need["GET", "/gallery"] == need["GET", "/"] == "open"  # the page; its calls need a key
    assert need["GET", "/variations"] == need["GET", "/variations/{id}/live"] == need["GET", "/metrics"] == "read"
    assert need["POST", "/variations"] == need["POST", "/sets/{name}/regenerate"] == "submit"
    assert need["POST", "/webhooks"] == need["DELETE", "/webhooks/{id}"] == "admin"
    assert need["GET", "/webhooks"] == "read"
    nowhere = {"type": "http", "method": "DELETE", "path": "/not/a/route", "root_path": ""}
    assert needed(routes, nowhere, table_of) == "read"  # no key: a 401, whatever the path, which tells nothing


# The real middleware in front of endpoints named like the API's.


async def create_variation(request: Request) -> Response:
    return JSONResponse({"received": len(await request.body())}, status_code=202)


async def list_variations(request: Request) -> Response:
    return JSONResponse({"items": []})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def serve_image(request: Request) -> Response:
    return Response(b"RIFF....WEBP", media_type="image/webp")


READER, WRITER = new_key("cms", "read"), new_key("ci", "submit")


def client(**settings: object) -> TestClient:
    made = Settings(**{"api_keys": f"{READER[1]},{WRITER[1]}", "max_body_bytes": 1024, **settings})
    endpoints = [
        Route("/variations", create_variation, methods=["POST"]),
        Route("/variations", list_variations, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/{variation}/{name}", serve_image, methods=["GET", "HEAD"]),
    ]
    needs = {create_variation: "submit", list_variations: "read", health: "open", serve_image: "images"}
    app = Starlette(
        routes=[Mount("/api/images", routes=endpoints)],
        middleware=[access.middleware(made, needs, access.load_keys(made))],
    )
    return TestClient(app, base_url="http://testserver/api/images")


def bearer(key: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key[0]}"}


def test_no_key_is_401_with_a_bearer_challenge_a_wrong_one_too_and_health_and_images_stay_open():
    with client() as api:
        missing = api.get("/variations")
        wrong = api.get("/variations", headers={"Authorization": "Bearer igk_not-a-key"})
        basic = api.get("/variations", headers={"Authorization": "Basic Y21zOnJlYWQ="})
        print(f"\n  no key {missing.status_code} {missing.headers['www-authenticate']!r}: {missing.json()['message']}")
        print(f"  wrong key {wrong.status_code} {wrong.headers['www-authenticate']!r}")
        assert missing.status_code == wrong.status_code == basic.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["errors"] == [{"field": "authorization", "message": "missing"}]
        assert wrong.json() == {
            "status": 401,
            "message": "the API key is not valid",
            "errors": [{"field": "authorization", "message": "not a known key"}],
        }
        assert api.get("/health").status_code == 200
        assert api.get("/spring-sale/og-image").status_code == 200
        assert api.get("/variations", headers={"X-API-Key": READER[0]}).status_code == 200


def test_a_read_key_reads_but_may_not_submit_and_a_submit_key_may():
    with client() as api:
        assert api.get("/variations", headers=bearer(READER)).status_code == 200
        refused = api.post("/variations", json={}, headers=bearer(READER))
        print(f"\n  read key POST: {refused.status_code} {refused.json()['message']}")
        assert refused.status_code == 403
        assert refused.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="submit"'
        assert refused.json()["errors"] == [{"field": "authorization", "message": "needs scope submit"}]
        assert api.post("/variations", json={}, headers=bearer(WRITER)).status_code == 202
        assert api.get("/variations", headers=bearer(WRITER)).status_code == 200  # submit implies read


def test_private_images_need_a_read_key():
    with client(image_access="read") as api:
        assert api.get("/spring-sale/og-image").status_code == 401
        assert api.get("/spring-sale/og-image", headers=bearer(READER)).status_code == 200


def test_each_key_has_its_own_window_and_the_fourth_call_in_a_minute_is_429_with_retry_after():
    with client(rate_limit_submit="3/minute") as api:
        answers = [api.post("/variations", json={}, headers=bearer(WRITER)) for _ in range(4)]
        statuses = [a.status_code for a in answers]
        last = answers[-1]
        print(
            f"\n  {statuses}, Retry-After {last.headers['retry-after']} s; remaining after each: "
            f"{[a.headers['ratelimit-remaining'] for a in answers]}"
        )
        assert statuses == [202, 202, 202, 429]
        assert 55 <= int(last.headers["retry-after"]) <= 60 and last.headers["ratelimit-limit"] == "3"
        assert api.get("/variations", headers=bearer(WRITER)).status_code == 200  # reads have their own limit


def test_a_body_over_the_limit_is_413_declared_or_streamed_and_one_under_it_passes():
    def chunks():
        yield b"{" + b" " * 700
        yield b" " * 700 + b"}"

    with client() as api:
        declared = api.post("/variations", content=b"x" * 1025, headers=bearer(WRITER))
        streamed = api.post("/variations", content=chunks(), headers=bearer(WRITER))
        print(
            f"\n  declared 1025 bytes: {declared.status_code}; streamed 1402 bytes: {streamed.status_code} "
            f"{streamed.json()['message']}"
        )
        assert declared.status_code == streamed.status_code == 413
        assert streamed.json()["errors"] == [{"field": "body", "message": "at most 1024 bytes"}]
        assert api.post("/variations", content=b"x" * 1024, headers=bearer(WRITER)).json() == {"received": 1024}


def test_without_keys_everything_is_open_and_unlimited_but_the_body_limit_holds():
    with client(api_keys="", rate_limit_submit="1/minute") as api:
        assert [api.post("/variations", json={}).status_code for _ in range(3)] == [202, 202, 202]
        assert api.post("/variations", content=b"x" * 2000).status_code == 413


def test_a_bad_setting_stops_the_api_at_start_naming_it():
    with pytest.raises(AccessConfigError, match="RATE_LIMIT_SUBMIT: 'sixty' is not a rate"):
        access.middleware(Settings(rate_limit_submit="sixty"), {}, ())
    with pytest.raises(AccessConfigError, match="API_KEYS: key 'x' has scope 'root'"):
        access.load_keys(Settings(api_keys="x:root:" + "0" * 64))
