"""Webhook signatures: `X-Imagegen-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

The timestamp is signed with the body, so a receiver that checks it is recent refuses a captured
request replayed later. `verify` uses the standard library only: receivers may copy it as it is."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Imagegen-Signature"
TOLERANCE_S = 300  # how old a signature a receiver accepts by default (clocks differ a little)


class InvalidSignature(ValueError):
    """The request was not signed with the secret, was altered, or is too old."""


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The X-Imagegen-Signature value for `body`, signed now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(secret: str, body: bytes, header: str, tolerance_s: float = TOLERANCE_S, now: float | None = None) -> int:
    """Check an X-Imagegen-Signature header against the raw request body; returns its timestamp.

    Raises InvalidSignature when no v1 signature matches or the timestamp is further than
    `tolerance_s` from now. Pass the body exactly as received, before any JSON parsing."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature("no timestamp (t=) in the signature header") from None
    expected = _mac(secret, timestamp, body)
    # several v1 values may come while a secret is being rolled over: one match is enough
    if not any(hmac.compare_digest(expected, given) for given in fields.get("v1", [])):
        raise InvalidSignature("no v1 signature matches the body")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_s:
        raise InvalidSignature(f"signed {age:.0f} s ago, outside the {tolerance_s} s tolerance")
    return timestamp
