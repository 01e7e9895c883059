"""Signing in to the gallery. A browser cannot send an API key with an `EventSource` or an `<img>`, so
`POST /api/images/session` exchanges a key for a session cookie: signed (itsdangerous, HMAC-SHA256),
expiring, `HttpOnly`, `SameSite=Strict`, carrying the key's name and scope, never the key. Every route
accepts the cookie as it accepts the key (api/access.py), with at most the scope the key has now (a key
removed from the configuration ends its sessions). A call that changes anything made with the cookie
must also send the session's CSRF token in `X-CSRF-Token`, which only the page's own script gets.
Signing out ends the session in this api process (a copy of the cookie kept elsewhere is refused too).

SESSION_SECRET signs the cookies; without it each api process draws its own at start, so sessions last
that process's life and hold only where they were made (set it when several api processes serve)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import endpoint as e
from api import responses as r
from api.access import COOKIE, Key, Session, find, implies
from api.problems import Problem, json_body, validated

log = logging.getLogger(__name__)

SALT = "imagegen.session"  # keeps these signatures apart from any other use of the secret


class SignInBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=200, description="an API key (igk_…), as `imagegen keys new` printed it")


class Sessions:
    def __init__(self, keys: tuple[Key, ...], secret: bytes, ttl_s: int) -> None:
        self.keys, self.ttl_s, self._secret = keys, ttl_s, secret
        self._signer = URLSafeTimedSerializer(secret, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})
        self._ended: dict[str, float] = {}  # ids of sessions signed out here, until they would expire

    @property
    def required(self) -> bool:
        return bool(self.keys)

    def issue(self, key: Key) -> tuple[str, Session]:
        """A new session for `key`: the cookie's value, and what it carries."""
        session = Session(
            secrets.token_urlsafe(16), key.name, key.scope, time.time() + self.ttl_s, secrets.token_urlsafe(24)
        )
        token = self._signer.dumps(
            {"i": session.id, "n": key.name, "k": self._fingerprint(key), "s": key.scope, "c": session.csrf}
        )
        return token, session

    def _fingerprint(self, key: Key) -> str:
        """Which key of that name made the session: a key replaced under the same name ends its sessions."""
        return hmac.new(self._secret, key.digest, hashlib.sha256).hexdigest()[:32]

    def read(self, token: str) -> Session | None:
        """The session a cookie carries; None when it is forged, altered, expired, signed out, or its
        key is no longer configured."""
        try:
            data, signed = self._signer.loads(token, max_age=self.ttl_s, return_timestamp=True)
        except BadSignature:  # SignatureExpired included
            return None
        if (
            not isinstance(data, dict)
            or not all(isinstance(data.get(k), str) for k in "inksc")
            or data["i"] in self._ended
        ):
            return None
        key = next(
            (k for k in self.keys if k.name == data["n"] and hmac.compare_digest(self._fingerprint(k), data["k"])),
            None,
        )
        if key is None:
            return None
        scope = data["s"] if implies(key.scope, data["s"]) else key.scope  # never more than the key has now
        return Session(data["i"], key.name, scope, signed.timestamp() + self.ttl_s, data["c"])

    def end(self, session: Session) -> None:
        now = time.time()
        self._ended = {i: t for i, t in self._ended.items() if t > now}
        # itsdangerous counts a signature's age in whole seconds: kept a second past its expiry
        self._ended[session.id] = session.expires + 1


def configured(keys: tuple[Key, ...], secret: str | None, ttl_s: int) -> Sessions:
    if keys and not secret:
        log.warning("SESSION_SECRET is not set: gallery sessions hold in this api process only, until it stops")
    return Sessions(keys, secret.encode() if secret else secrets.token_bytes(32), ttl_s)


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


def _described(sessions: Sessions, session: Session | None) -> dict[str, Any]:
    return {
        "required": sessions.required,
        "signedIn": session is not None,
        "name": session.name if session else None,
        "scope": session.scope if session else ("admin" if not sessions.required else None),
        "expiresAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.expires)) if session else None,
        "csrfToken": session.csrf if session else None,
    }


async def get_session(request: Request) -> Response:
    """Whether keys are required, and who this browser is signed in as."""
    sessions = _sessions(request)
    token = request.cookies.get(COOKIE)
    return JSONResponse(
        _described(sessions, sessions.read(token) if token else None), headers={"Cache-Control": "no-store"}
    )


async def sign_in(request: Request) -> Response:
    sessions = _sessions(request)
    body = validated(SignInBody, await json_body(request))
    if not sessions.required:
        raise Problem(409, "no API keys are configured: every route is open, there is nothing to sign in to")
    key = find(sessions.keys, body.key.strip())
    if key is None:
        log.info("sign-in refused: not a known key")
        raise Problem(401, "the API key is not valid", [{"field": "key", "message": "not a known key"}])
    token, session = sessions.issue(key)
    log.info("key %r signed in (scope %s)", key.name, key.scope)
    response = JSONResponse(_described(sessions, session), headers={"Cache-Control": "no-store"})
    response.set_cookie(
        COOKIE,
        token,
        max_age=sessions.ttl_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or request.app.state.settings.public_base_url.startswith("https:"),
    )
    return response


async def sign_out(request: Request) -> Response:
    sessions = _sessions(request)
    token = request.cookies.get(COOKIE)
    if token and (session := sessions.read(token)) is not None:
        sessions.end(session)
        log.info("key %r signed out", session.name)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


ENDPOINTS = (
    e.Endpoint(
        ("GET",),
        "/session",
        get_session,
        e.OPEN,
        "access",
        "Whether keys are required, and who this browser is signed in as",
        {200: e.Answer("the session (signedIn false: none)", r.SessionState)},
    ),
    e.Endpoint(
        ("POST",),
        "/session",
        sign_in,
        e.OPEN,
        "access",
        "Sign in with an API key: a session cookie for the gallery",
        {
            200: e.Answer(
                "signed in: the cookie is set; send csrfToken as X-CSRF-Token with every change", r.SessionState
            ),
            401: e.Answer("not a known key"),
            409: e.Answer("no keys are configured: nothing to sign in to"),
            **e.BODY_ERRORS,
        },
        body=SignInBody,
    ),
    e.Endpoint(
        ("DELETE",),
        "/session",
        sign_out,
        e.OPEN,
        "access",
        "Sign out: the session ends and its cookie is cleared",
        {204: e.Answer("signed out (or was not signed in)", None)},
    ),
)
