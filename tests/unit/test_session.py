"""Signing in to the gallery (api/session.py) and the session cookie in front of the routes
(api/access.py): the real session endpoints and middleware in front of a small Starlette app with a
read route and a submit route, through Starlette's TestClient. Tampered, foreign, expired, signed-out
cookies and ones whose key is gone are refused; a session never holds more than its key holds now."""

from __future__ import annotations

import calendar
import hashlib
import json
import time
import zlib
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie

import pytest
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from api import access, session
from api.access import COOKIE, CSRF_HEADER, new_key
from api.problems import Problem
from imagegen.config import Settings

SECRET = "the-deployment's-session-secret"
SUBMITTER, READER = new_key("ci", "submit"), new_key("cms", "read")
BASE = "http://testserver"
SHA256 = {"digest_method": hashlib.sha256}  # as api/session.py signs


async def create_variation(request: Request) -> Response:
    return JSONResponse({"accepted": True}, status_code=202)


async def list_variations(request: Request) -> Response:
    return JSONResponse({"items": []})


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


def gallery_api(
    entries: tuple[str, ...] = (SUBMITTER[1], READER[1]),
    secret: str | None = SECRET,
    ttl_s: int = 3600,
    **settings: object,
) -> Starlette:
    """An api process: its configured keys (entries), its session secret and lifetime."""
    made = Settings(**{"api_keys": ",".join(entries), **settings})
    keys = access.load_keys(made)
    sessions = session.configured(keys, secret, ttl_s)
    endpoints = [Route(e.path, e.handler, methods=list(e.methods)) for e in session.ENDPOINTS]
    endpoints += [
        Route("/variations", create_variation, methods=["POST"]),
        Route("/variations", list_variations, methods=["GET"]),
    ]
    needs = {e.handler: e.scope for e in session.ENDPOINTS} | {create_variation: "submit", list_variations: "read"}
    app = Starlette(
        routes=[Mount("/api/images", routes=endpoints)],
        middleware=[access.middleware(made, needs, keys, sessions)],
        exception_handlers={Problem: _problem},
    )
    app.state.sessions, app.state.settings = sessions, made
    return app


def browser(app: Starlette, base_url: str = BASE) -> TestClient:
    return TestClient(app, base_url=base_url)


def sign_in(api: TestClient, key: tuple[str, str]) -> tuple[str, dict]:
    """The cookie's value and the answer's body, for a sign-in that must succeed."""
    answer = api.post("/api/images/session", json={"key": key[0]})
    assert answer.status_code == 200, answer.text
    return answer.cookies[COOKIE], answer.json()


def carrying(token: str, csrf: str | None = None) -> dict[str, str]:
    """Headers that send a cookie's value explicitly (and the CSRF token, when given)."""
    return {"Cookie": f"{COOKIE}={token}", **({CSRF_HEADER: csrf} if csrf is not None else {})}


def refused_for(answer) -> tuple[int, list[str]]:
    return answer.status_code, [e["field"] for e in answer.json().get("errors", [])]


def payload(token: str) -> dict:
    """What a cookie carries (its first part: base64 JSON, zlib-compressed when it starts with '.')."""
    part = token.split(".")[0] if not token.startswith(".") else token.split(".")[1]
    raw = base64_decode(part)
    return json.loads(zlib.decompress(raw) if token.startswith(".") else raw)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """The wall clock, which itsdangerous and api/session.py read, moved on by hand."""
    now = [float(int(time.time()))]  # a whole second: cookies carry whole seconds
    monkeypatch.setattr(time, "time", lambda: now[0])

    def advance(seconds: float) -> None:
        now[0] += seconds

    yield advance


def test_signing_in_sets_a_strict_httponly_cookie_and_tells_who_with_the_csrf_token():
    app = gallery_api()
    api = browser(app)
    before = api.get("/api/images/session").json()
    assert before == {
        "required": True,
        "signedIn": False,
        "name": None,
        "scope": None,
        "expiresAt": None,
        "csrfToken": None,
    }
    answer = api.post("/api/images/session", json={"key": SUBMITTER[0]})
    (morsel,) = SimpleCookie(answer.headers["set-cookie"]).values()
    name, attributes = answer.headers["set-cookie"].split("=", 1)[0], answer.headers["set-cookie"].split("; ", 1)[1]
    print(f"\n  Set-Cookie: {name}=…; {attributes}")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert morsel.key == COOKIE and morsel["httponly"] and morsel["samesite"] == "strict"
    assert morsel["path"] == "/" and morsel["max-age"] == "3600" and not morsel["secure"]  # plain http here
    assert SUBMITTER[0] not in morsel.value and payload(morsel.value)["n"] == "ci"  # the key's name, never the key
    signed_in = answer.json()
    assert (signed_in["signedIn"], signed_in["name"], signed_in["scope"]) == (True, "ci", "submit")
    assert len(signed_in["csrfToken"]) >= 24
    expires = calendar.timegm(time.strptime(signed_in["expiresAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(expires - (time.time() + 3600)) < 5

    now = api.get("/api/images/session")  # the browser's cookie jar sends it back
    print(f"  GET session: {now.json()}")
    assert now.headers["cache-control"] == "no-store"
    assert now.json() == {**signed_in, "expiresAt": now.json()["expiresAt"]}
    assert now.json()["csrfToken"] == signed_in["csrfToken"]
    assert browser(app).get("/api/images/session").json()["signedIn"] is False  # another browser: not signed in


def test_the_cookie_is_secure_when_the_api_is_served_over_https():
    behind_a_proxy = browser(gallery_api(public_base_url="https://images.example.com"))
    direct = browser(gallery_api(), base_url="https://testserver")
    for api in (behind_a_proxy, direct):
        answer = api.post("/api/images/session", json={"key": SUBMITTER[0]})
        (morsel,) = SimpleCookie(answer.headers["set-cookie"]).values()
        assert answer.status_code == 200 and morsel["secure"], answer.headers["set-cookie"]


def test_a_change_made_with_the_cookie_needs_the_sessions_csrf_token():
    api = browser(gallery_api())
    _, signed_in = sign_in(api, SUBMITTER)
    csrf = signed_in["csrfToken"]
    with_token = api.post("/api/images/variations", json={}, headers={CSRF_HEADER: csrf})
    without = api.post("/api/images/variations", json={})
    wrong = api.post(
        "/api/images/variations", json={}, headers={CSRF_HEADER: csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}
    )
    empty = api.post("/api/images/variations", json={}, headers={CSRF_HEADER: ""})
    print(
        f"\n  POST with the token {with_token.status_code}; without {without.status_code}: {without.json()['message']}"
    )
    assert with_token.status_code == 202
    assert refused_for(without) == refused_for(wrong) == refused_for(empty) == (403, [CSRF_HEADER])
    assert api.get("/api/images/variations").status_code == 200  # a read needs no token


def test_a_read_keys_session_reads_but_may_not_submit():
    api = browser(gallery_api())
    _, signed_in = sign_in(api, READER)
    assert signed_in["scope"] == "read"
    assert api.get("/api/images/variations").status_code == 200
    submitted = api.post("/api/images/variations", json={}, headers={CSRF_HEADER: signed_in["csrfToken"]})
    print(f"\n  read session POST: {submitted.status_code} {submitted.json()['message']}")
    assert refused_for(submitted) == (403, ["cookie"])
    assert submitted.json()["errors"][0]["message"] == "needs scope submit"


def test_a_wrong_key_is_refused_at_sign_in_and_sets_no_cookie():
    api = browser(gallery_api())
    for wrong in ("igk_not-a-key", SUBMITTER[0] + "x", SUBMITTER[1]):  # the configured entry is not the key either
        answer = api.post("/api/images/session", json={"key": wrong})
        assert refused_for(answer) == (401, ["key"]) and "set-cookie" not in answer.headers
    print(f"\n  wrong key: {answer.status_code} {answer.json()}")
    assert api.get("/api/images/variations").status_code == 401  # and nothing was let in


def test_without_keys_there_is_nothing_to_sign_in_to():
    api = browser(gallery_api(entries=()))
    answer = api.post("/api/images/session", json={"key": SUBMITTER[0]})
    print(f"\n  no keys configured: {answer.status_code} {answer.json()['message']}")
    assert answer.status_code == 409 and "set-cookie" not in answer.headers
    state = api.get("/api/images/session").json()
    assert (state["required"], state["signedIn"], state["scope"]) == (False, False, "admin")
    assert api.post("/api/images/variations", json={}).status_code == 202  # every route is open


def test_a_tampered_cookie_is_refused():
    app = gallery_api()
    token, signed_in = sign_in(browser(app), READER)
    csrf = signed_in["csrfToken"]
    data, timestamp, signature = token.rsplit(".", 2)
    at = len(signature) // 2  # a character that carries six bits of the signature (the last one may carry fewer)
    flipped = f"{data}.{timestamp}.{signature[:at]}{'A' if signature[at] != 'A' else 'B'}{signature[at + 1 :]}"
    promoted = {**payload(token), "s": "admin"}
    rewritten = f"{base64_encode(json.dumps(promoted, separators=(',', ':'))).decode()}.{timestamp}.{signature}"
    api = browser(app)
    assert api.get("/api/images/variations", headers=carrying(token)).status_code == 200  # the cookie as issued
    for name, forged in (("signature flipped", flipped), ("payload rewritten to admin", rewritten)):
        read = api.get("/api/images/variations", headers=carrying(forged))
        change = api.post("/api/images/variations", json={}, headers=carrying(forged, csrf))
        print(f"\n  {name}: GET {read.status_code}, POST {change.status_code}", end="")
        assert refused_for(read) == refused_for(change) == (401, ["cookie"]), name
        assert api.get("/api/images/session", headers=carrying(forged)).json()["signedIn"] is False
    print(f"\n  {read.json()['message']}")


def test_a_cookie_signed_with_another_secret_is_refused_and_a_validly_signed_claim_gets_no_more_than_its_key():
    app = gallery_api()
    token, signed_in = sign_in(browser(app), READER)
    api = browser(app)
    claim = {**payload(token), "s": "admin"}
    foreign = URLSafeTimedSerializer("someone-else's-secret", salt=session.SALT, signer_kwargs=SHA256).dumps(claim)
    assert refused_for(api.get("/api/images/variations", headers=carrying(foreign))) == (401, ["cookie"])
    # another api process with its own secret refuses this one's cookie, and so do two without any
    # secret set (each draws its own)
    elsewhere = browser(gallery_api(secret="another-deployment"))
    assert refused_for(elsewhere.get("/api/images/variations", headers=carrying(token))) == (401, ["cookie"])
    first, second = gallery_api(secret=None), gallery_api(secret=None)
    drawn, _ = sign_in(browser(first), SUBMITTER)
    assert browser(first).get("/api/images/variations", headers=carrying(drawn)).status_code == 200
    assert refused_for(browser(second).get("/api/images/variations", headers=carrying(drawn))) == (401, ["cookie"])
    # even a claim of admin signed with the right secret holds only the key's scope
    signed = URLSafeTimedSerializer(SECRET, salt=session.SALT, signer_kwargs=SHA256).dumps(claim)
    state = api.get("/api/images/session", headers=carrying(signed)).json()
    change = api.post("/api/images/variations", json={}, headers=carrying(signed, signed_in["csrfToken"]))
    print(f"\n  foreign secret: 401; right secret, admin claimed by a read key: {state['scope']}, {change.status_code}")
    assert state["scope"] == "read" and refused_for(change) == (403, ["cookie"])


def test_a_cookie_is_refused_once_it_expires(clock):
    app = gallery_api(ttl_s=60)
    token, signed_in = sign_in(browser(app), SUBMITTER)
    csrf = signed_in["csrfToken"]
    api = browser(app)
    clock(59)
    assert api.post("/api/images/variations", json={}, headers=carrying(token, csrf)).status_code == 202
    clock(2)  # 61 s after signing in
    read = api.get("/api/images/variations", headers=carrying(token))
    change = api.post("/api/images/variations", json={}, headers=carrying(token, csrf))
    print(f"\n  61 s into a 60 s session: GET {read.status_code}, POST {change.status_code}")
    assert refused_for(read) == refused_for(change) == (401, ["cookie"])
    assert api.get("/api/images/session", headers=carrying(token)).json()["signedIn"] is False
    fresh, _ = sign_in(api, SUBMITTER)  # signing in again works
    assert api.get("/api/images/variations", headers=carrying(fresh)).status_code == 200


def test_signing_out_ends_the_session_and_a_kept_copy_of_the_cookie_is_refused():
    app = gallery_api()
    api = browser(app)
    token, signed_in = sign_in(api, SUBMITTER)
    out = api.delete("/api/images/session")
    (morsel,) = SimpleCookie(out.headers["set-cookie"]).values()
    print(f"\n  DELETE session: {out.status_code}, Set-Cookie Max-Age={morsel['max-age']}")
    assert out.status_code == 204 and morsel.key == COOKIE and morsel["max-age"] == "0"
    assert api.get("/api/images/session").json()["signedIn"] is False  # the browser dropped it
    kept = browser(app)
    assert refused_for(kept.get("/api/images/variations", headers=carrying(token))) == (401, ["cookie"])
    change = kept.post("/api/images/variations", json={}, headers=carrying(token, signed_in["csrfToken"]))
    assert refused_for(change) == (401, ["cookie"])
    assert kept.get("/api/images/session", headers=carrying(token)).json()["signedIn"] is False
    assert kept.delete("/api/images/session", headers=carrying(token)).status_code == 204  # again: still fine
    other, _ = sign_in(kept, SUBMITTER)  # the key's other sessions go on
    assert kept.get("/api/images/variations", headers=carrying(other)).status_code == 200
    # as documented, the session ends in this api process only: another with the same secret still takes it
    assert browser(gallery_api()).get("/api/images/variations", headers=carrying(token)).status_code == 200


def test_a_key_removed_from_the_configuration_ends_its_sessions():
    submitter, _ = sign_in(browser(gallery_api()), SUBMITTER)
    reader, _ = sign_in(browser(gallery_api()), READER)
    without_ci = browser(gallery_api(entries=(READER[1],)))  # restarted with the same secret, ci's key removed
    gone = without_ci.get("/api/images/variations", headers=carrying(submitter))
    print(f"\n  key removed: {gone.status_code} {gone.json()['message']}")
    assert refused_for(gone) == (401, ["cookie"])
    assert without_ci.get("/api/images/session", headers=carrying(submitter)).json()["signedIn"] is False
    assert without_ci.get("/api/images/variations", headers=carrying(reader)).status_code == 200


def test_a_session_never_holds_more_scope_than_its_key_has_now():
    token, signed_in = sign_in(browser(gallery_api()), SUBMITTER)
    csrf = signed_in["csrfToken"]
    ci_as_reader = SUBMITTER[1].replace(":submit:", ":read:")
    demoted = browser(gallery_api(entries=(ci_as_reader, READER[1])))
    state = demoted.get("/api/images/session", headers=carrying(token)).json()
    change = demoted.post("/api/images/variations", json={}, headers=carrying(token, csrf))
    print(f"\n  ci reconfigured as read: session scope {state['scope']}, POST {change.status_code}")
    assert state["signedIn"] and state["scope"] == "read"
    assert refused_for(change) == (403, ["cookie"])
    assert demoted.get("/api/images/variations", headers=carrying(token)).status_code == 200
    ci_as_admin = SUBMITTER[1].replace(":submit:", ":admin:")
    promoted = browser(gallery_api(entries=(ci_as_admin,)))
    assert promoted.get("/api/images/session", headers=carrying(token)).json()["scope"] == "submit"  # nor more


def test_a_bearer_key_wins_over_the_cookie_when_both_are_sent():
    app = gallery_api()
    submit_cookie, submit_session = sign_in(browser(app), SUBMITTER)
    read_cookie, _ = sign_in(browser(app), READER)
    api = browser(app)
    # a submit session with a read key: the key's scope decides
    by_key = api.post(
        "/api/images/variations",
        json={},
        headers={**carrying(submit_cookie, submit_session["csrfToken"]), "Authorization": f"Bearer {READER[0]}"},
    )
    assert refused_for(by_key) == (403, ["authorization"])
    # a read session with a submit key: it submits, and (no cookie in play) needs no CSRF token
    submitted = api.post(
        "/api/images/variations", json={}, headers={**carrying(read_cookie), "Authorization": f"Bearer {SUBMITTER[0]}"}
    )
    assert submitted.status_code == 202
    # a wrong key is refused even beside a valid cookie, and so is a wrong X-API-Key
    wrong = api.get("/api/images/variations", headers={**carrying(submit_cookie), "Authorization": "Bearer igk_nope"})
    wrong_x = api.get("/api/images/variations", headers={**carrying(submit_cookie), "X-API-Key": "igk_nope"})
    print(f"\n  read key + submit cookie: POST {by_key.status_code}; submit key + read cookie: {submitted.status_code}")
    assert refused_for(wrong) == refused_for(wrong_x) == (401, ["authorization"])


def test_signing_in_takes_only_a_json_body_with_a_key():
    api = browser(gallery_api())
    assert (
        api.post("/api/images/session", content=SUBMITTER[0], headers={"content-type": "text/plain"}).status_code == 415
    )
    assert refused_for(api.post("/api/images/session", json={})) == (422, ["key"])
    assert api.post("/api/images/session", json={"key": SUBMITTER[0], "scope": "admin"}).status_code == 422
    _, padded = sign_in(api, (f"  {SUBMITTER[0]}\n", ""))  # pasted with blanks around it
    assert padded["name"] == "ci"


def test_a_key_rotated_under_the_same_name_ends_the_old_keys_sessions():
    token, _ = sign_in(browser(gallery_api()), SUBMITTER)
    rotated = new_key("ci", "submit")  # the old key removed, a new one issued under the same name
    after = browser(gallery_api(entries=(rotated[1], READER[1])))
    assert refused_for(after.get("/api/images/variations", headers=carrying(token))) == (401, ["cookie"])


def test_a_signed_out_cookie_stays_refused_up_to_its_expiry(clock):
    app = gallery_api(ttl_s=60)
    api = browser(app)
    token, _ = sign_in(api, SUBMITTER)
    assert api.delete("/api/images/session").status_code == 204
    clock(60.5)  # at the last moment itsdangerous still takes the cookie (its age, in whole seconds, is 60)
    assert refused_for(api.get("/api/images/variations", headers=carrying(token))) == (401, ["cookie"])  # holds
    other = browser(app)
    sign_in(other, READER)
    assert other.delete("/api/images/session").status_code == 204  # another sign-out forgets the ended ones due
    assert refused_for(api.get("/api/images/variations", headers=carrying(token))) == (401, ["cookie"])
