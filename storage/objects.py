"""What both stores have in common: the protocol they meet, their errors, and the keys. Keys:
`{variation}/masters/{family}.webp`, `{variation}/derivatives/{name}.webp`; a key never names anything
outside its storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    pass


class KeyOutsideStorage(StorageError):
    pass


class StorageUnavailable(StorageError, OSError):
    """The store did not answer or failed on its side. An OSError, like a full or failing disk, so a
    family job that meets it fails retryably (streams/jobs.py)."""


def master_key(variation: str, family: str, ext: str = "webp") -> str:
    return f"{variation}/masters/{family}.{ext}"


def derivative_key(variation: str, name: str, ext: str = "webp") -> str:
    return f"{variation}/derivatives/{name}.{ext}"


def checked(key: str, *, prefix: bool = False) -> str:
    """`key` if it is relative, free of '..' and '.' segments, backslashes and NUL; a list prefix may
    also be empty or end with '/'."""
    segments = key.split("/")
    if prefix and segments[-1] == "":
        segments.pop()
    bad_segment = any(s in ("", ".", "..") for s in segments) and (key or not prefix)
    if (not key and not prefix) or key.startswith("/") or "\\" in key or "\x00" in key or bad_segment:
        raise KeyOutsideStorage(key)
    return key


@dataclass(frozen=True)
class Fetched:
    """An image as its store answers a (ranged, conditional) GET or HEAD: the HTTP status (200, 206, 304
    or 416), the headers that describe what follows, and the body to stream once (None when there is
    none); or, from a folder, the file itself (`file`), which the server sends answering Range and the
    conditions on its own."""

    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes] | None = field(default=None, repr=False)
    file: Path | None = None


class Storage(Protocol):
    """Where images live, as its users see it: the workers put them, the api serves them."""

    async def open(self) -> None:
        """Connect and check, so a wrong setting stops a service at start."""

    async def close(self) -> None: ...

    async def put(self, key: str, data: bytes, content_type: str, cache_control: str | None = None) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...

    async def list(self, prefix: str = "") -> list[str]:
        """The keys starting with `prefix`, sorted."""
        ...

    async def fetch(
        self,
        key: str,
        *,
        head: bool = False,
        range: str | None = None,
        if_range: str | datetime | None = None,
        if_none_match: str | None = None,
        if_modified_since: datetime | None = None,
    ) -> Fetched | None:
        """The image for an HTTP client (None when there is none)."""
        ...

    async def presigned_url(self, key: str, expires_s: int, method: str = "GET") -> str | None:
        """A URL of the store's own that lets its holder GET (or HEAD) the image for `expires_s`
        seconds; None when the store has none (a folder)."""
        ...
