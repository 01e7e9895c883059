"""Who may call the API, how often, and with how large a body: API keys with scopes, per-key rate
limits and a request body size limit, as one pure ASGI middleware in front of the routes. Pure ASGI
(not BaseHTTPMiddleware) so the server-sent events of /variations/{id}/live and streamed images pass
through untouched.

Keys are configured by their SHA-256 only (API_KEYS, API_KEYS_FILE: `name:scope:sha256hex` entries);
with none configured every route stays open, as in development. Scopes are ordered: admin implies
submit, which implies read. The health check is always open, and so are image files unless
IMAGE_ACCESS=read: pages embed them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.endpoint import IMAGES, OPEN
from api.problems import problem

if TYPE_CHECKING:
    from imagegen.config import Settings

log = logging.getLogger(__name__)

ScopeName = Literal["read", "submit", "admin"]
SCOPES: tuple[ScopeName, ...] = ("read", "submit", "admin")  # each implies those before it
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
COOKIE, CSRF_HEADER = "imagegen_session", "x-csrf-token"  # the gallery's session (api/session.py)
PREFIX = "igk_"  # lets secret scanners and people tell an imagegen key from other tokens


class AccessConfigError(ValueError):
    pass


class BodyTooLarge(Exception):  # not a ValueError: endpoints catch those while parsing JSON
    pass


@dataclass(frozen=True)
class Key:
    name: str
    scope: ScopeName
    digest: bytes  # SHA-256 of the key

    def allows(self, needed: str) -> bool:
        return implies(self.scope, needed)


@dataclass(frozen=True)
class Session:
    """A gallery session, as its cookie carries it (api/session.py signs and reads them)."""

    id: str
    name: str  # the key's
    scope: str  # at most the key's scope now
    expires: float  # epoch seconds
    csrf: str


class Sessions(Protocol):
    def read(self, token: str) -> Session | None:
        """The session a cookie's value carries; None when it is not valid."""
        ...


def implies(held: str, needed: str) -> bool:
    return SCOPES.index(held) >= SCOPES.index(needed)


def digest(key: str) -> bytes:
    # A fast hash is right here: keys are 256-bit random tokens, not passwords, so there is nothing
    # for a slow, salted hash to protect against; a stolen hash list cannot be reversed to a key.
    return hashlib.sha256(key.encode()).digest()


def new_key(name: str, scope: str) -> tuple[str, str]:
    """A fresh random key and the entry that configures it (its hash, never the key)."""
    if not NAME.fullmatch(name):
        raise AccessConfigError(f"key name {name!r}: at most 64 letters, digits, '.', '_' or '-'")
    entry = f"{name}:{scope}:{digest(key := PREFIX + secrets.token_urlsafe(32)).hex()}"
    parse_keys(entry)  # refuses a bad scope, naming it
    return key, entry


def parse_keys(text: str, where: str = "API_KEYS") -> tuple[Key, ...]:
    """`name:scope:sha256hex` entries, separated by commas or lines; `#` starts a comment. Errors
    never repeat the hash part: a key pasted there by mistake stays out of the logs."""
    keys: list[Key] = []
    entries = (e.strip() for line in text.splitlines() for e in line.split("#", 1)[0].split(","))
    for n, entry in enumerate(filter(None, entries), 1):
        name, scope, hexdigest = ([*entry.split(":"), "", ""])[:3]
        if entry.count(":") != 2 or not NAME.fullmatch(name):
            raise AccessConfigError(f"{where}: entry {n} is not name:scope:sha256hex (name: letters, digits, ._-)")
        if scope not in SCOPES:
            raise AccessConfigError(f"{where}: key {name!r} has scope {scope!r}; scopes: {', '.join(SCOPES)}")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", hexdigest):
            raise AccessConfigError(
                f"{where}: key {name!r}: the hash is not a SHA-256 in hex (64 digits); configure the "
                "entry `imagegen keys new` prints, never the key"
            )
        if any(k.name == name for k in keys):
            raise AccessConfigError(f"{where}: key name {name!r} is given twice")
        keys.append(Key(name, scope, bytes.fromhex(hexdigest)))
    return tuple(keys)


def find(keys: Iterable[Key], presented: str) -> Key | None:
    """The configured key whose hash matches, comparing against every one in constant time (no
    early exit that would tell by its timing which entry matched)."""
    wanted, found = digest(presented), None
    for key in keys:
        if hmac.compare_digest(wanted, key.digest) and found is None:
            found = key
    return found


def presented(headers: Headers) -> str | None:
    """The key from `Authorization: Bearer <key>`, else from `X-API-Key`."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key", "").strip() or None


def needed(routes: Iterable[BaseRoute], scope: Scope, scopes: Mapping[object, str]) -> str:
    """The scope a request needs (or OPEN, IMAGES), found by the router's own matching and looked up
    by the matched route's handler (a mounted app's, for the gallery's files). A route not in `scopes`
    needs `read` to look and `admin` to change anything; a path no route matches needs `read` (a
    caller without a key learns nothing of which routes exist)."""
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            if isinstance(route, Mount) and route.routes:
                return needed(route.routes, {**scope, **child}, scopes)
            handler = route.app if isinstance(route, Mount) else getattr(route, "endpoint", None)
            return scopes.get(handler, "read" if scope["method"] in ("GET", "HEAD") else "admin")
    return "read"


def _problem(status: int, message: str, field: str | None = None, why: str = "", **headers: str) -> JSONResponse:
    return problem(status, message, [{"field": field, "message": why}] if field else None, headers=headers)


class Access:
    def __init__(
        self,
        app: ASGIApp,
        keys: tuple[Key, ...],
        limits: dict[str, RateLimitItem | None],
        max_body_bytes: int,
        scopes: Mapping[object, str],
        private_images: bool = False,
        sessions: Sessions | None = None,
    ) -> None:
        self.app, self.keys, self.limits, self.scopes, self.sessions = app, keys, limits, scopes, sessions
        self.max_body_bytes, self.private_images = max_body_bytes, private_images
        # Counted in this process's memory: each api process counts on its own, so N api processes
        # behind one balancer allow up to N times the limit.
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # 1. The scope the route needs
        need = needed(scope["app"].routes, scope, self.scopes) if self.keys else OPEN
        if need == IMAGES:
            need = "read" if self.private_images else OPEN
        who: str | None = None
        extra: list[tuple[bytes, bytes]] = []
        if need != OPEN:
            # 2. The key, 3. the rate: a refusal answers now
            who, extra, refusal = self.check(scope, headers, need)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        # 4. The body: its declared length now, and the bytes as they arrive (a chunked body has none)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self.too_large()(scope, receive, send)
            return
        received, started = 0, False

        async def receiving() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
                if who and need != "read":  # who changed what: the key's name, never the key
                    log.info("%s %s by %s: %d", scope["method"], scope["path"], who, message["status"])
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except BodyTooLarge:
            if started:
                raise
            await self.too_large()(scope, receive, send)

    def too_large(self) -> JSONResponse:
        limit = self.max_body_bytes
        return _problem(413, f"the body is larger than {limit} bytes", "body", f"at most {limit} bytes")

    def check(
        self, scope: Scope, headers: Headers, need: str
    ) -> tuple[str, list[tuple[bytes, bytes]], JSONResponse | None]:
        """Who calls (a key's name, or for a caller without a valid key its address), the RateLimit
        headers for the answer, and the refusal to send instead of calling the route (or None)."""
        method, path = scope["method"], scope["path"]
        given = presented(headers)
        key = find(self.keys, given) if given else None
        client = scope.get("client")
        who = f"key {key.name!r}" if key else f"address {client[0] if client else '?'}"
        if given is None and self.sessions is not None and (cookie := _cookie(headers)) is not None:
            return self.by_session(scope, headers, need, cookie, who)
        if key is not None and not key.allows(need):
            log.info("%s %s refused: %s has scope %s, needs %s", method, path, who, key.scope, need)
            message = f"{who} has scope {key.scope}; {method} {path} needs {need}"
            bearer = {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{need}"'}
            return who, [], _problem(403, message, "authorization", f"needs scope {need}", **bearer)
        # per key, or per address for those without one (counted before their 401: a flood of wrong
        # keys is slowed too)
        extra, refusal = self.limited(method, path, who, need)
        if refusal is not None:
            return who, extra, refusal
        if key is None:
            log.info("%s %s refused: %s, %s key", method, path, who, "a wrong" if given else "no")
            if given:
                return (
                    who,
                    [],
                    _problem(
                        401,
                        "the API key is not valid",
                        "authorization",
                        "not a known key",
                        **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
                    ),
                )
            message = 'an API key is required: send "Authorization: Bearer <key>" (or "X-API-Key: <key>")'
            return who, [], _problem(401, message, "authorization", "missing", **{"WWW-Authenticate": "Bearer"})
        return who, extra, None

    def limited(
        self, method: str, path: str, who: str, need: str
    ) -> tuple[list[tuple[bytes, bytes]], JSONResponse | None]:
        """The RateLimit headers for `who`'s call, and the refusal when it is over its limit. Submit and
        admin calls share one limit, reads have another."""
        bucket = "read" if need == "read" else "submit"
        if (limit := self.limits[bucket]) is None:
            return [], None
        allowed = self.limiter.hit(limit, bucket, who)
        stats = self.limiter.get_window_stats(limit, bucket, who)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        extra = [
            (b"ratelimit-limit", str(limit.amount).encode()),
            (b"ratelimit-remaining", str(stats.remaining).encode()),
            (b"ratelimit-reset", str(reset).encode()),
        ]
        if allowed:
            return extra, None
        log.info("%s %s refused: %s over %s", method, path, who, limit)
        refusal = _problem(
            429, f"rate limit of {limit} reached for {who}; retry in {reset} s", **{"Retry-After": str(reset)}
        )
        refusal.raw_headers.extend(extra)
        return extra, refusal

    def by_session(
        self, scope: Scope, headers: Headers, need: str, cookie: str, address: str
    ) -> tuple[str, list[tuple[bytes, bytes]], JSONResponse | None]:
        """`check` for a call that carries the gallery's session cookie (api/session.py) instead of a key."""
        assert self.sessions is not None
        method, path = scope["method"], scope["path"]
        session = self.sessions.read(cookie)
        if session is None:
            log.info("%s %s refused: %s, a session cookie not valid", method, path, address)
            message = "the session is not valid (expired, signed out, altered, or its key removed): sign in again"
            return address, [], _problem(401, message, "cookie", "not a valid session")
        who = f"key {session.name!r} (session)"
        if method not in SAFE_METHODS and not hmac.compare_digest(
            headers.get(CSRF_HEADER, "").encode(), session.csrf.encode()
        ):
            log.info("%s %s refused: %s without its CSRF token", method, path, who)
            message = f"a change made with a session cookie needs the session's CSRF token in {CSRF_HEADER}"
            return who, [], _problem(403, message, CSRF_HEADER, "missing or wrong")
        if not implies(session.scope, need):
            log.info("%s %s refused: %s has scope %s, needs %s", method, path, who, session.scope, need)
            message = f"{who} has scope {session.scope}; {method} {path} needs {need}"
            return who, [], _problem(403, message, "cookie", f"needs scope {need}")
        extra, refusal = self.limited(method, path, f"key {session.name!r}", need)  # one limit per key
        return who, extra, refusal


def _cookie(headers: Headers) -> str | None:
    """The gallery's session cookie, if the request has one."""
    jar = cookie_parser(headers.get("cookie", ""))
    return jar.get(COOKIE) or None


def load_keys(settings: Settings) -> tuple[Key, ...]:
    keys = parse_keys(settings.api_keys)
    if settings.api_keys_file is not None:
        try:
            text = Path(settings.api_keys_file).read_text()
        except OSError as exc:
            raise AccessConfigError(f"API_KEYS_FILE: cannot read {settings.api_keys_file}: {exc}") from None
        keys += parse_keys(text, f"API_KEYS_FILE {settings.api_keys_file}")
    if len({k.name for k in keys}) < len(keys):
        raise AccessConfigError("API_KEYS and API_KEYS_FILE name the same key twice")
    return keys


def rate(setting: str, value: str) -> RateLimitItem | None:
    """`60/minute`, `10 per second`…; empty: no limit."""
    try:
        return parse(value) if value.strip() else None
    except ValueError:
        raise AccessConfigError(f"{setting}: {value!r} is not a rate such as 60/minute") from None


def middleware(
    settings: Settings, scopes: Mapping[object, str], keys: tuple[Key, ...], sessions: Sessions | None = None
) -> Middleware:
    """The middleware for these settings and keys (`load_keys`, which stops the api at start on a bad
    entry, naming it). `scopes`: what calling each handler needs (api/routes.py); `sessions`: the
    gallery's, accepted like keys."""
    limits = {
        "read": rate("RATE_LIMIT_READ", settings.rate_limit_read),
        "submit": rate("RATE_LIMIT_SUBMIT", settings.rate_limit_submit),
    }
    if keys:
        log.info("API keys required: %d configured (%s)", len(keys), ", ".join(f"{k.name}:{k.scope}" for k in keys))
    else:
        log.warning("no API keys configured: every route is open to whoever reaches the api")
    return Middleware(
        Access,
        keys=keys,
        limits=limits,
        max_body_bytes=settings.max_body_bytes,
        scopes=scopes,
        private_images=settings.image_access == "read",
        sessions=sessions,
    )
