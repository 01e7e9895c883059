"""Waiting for an eventually consistent state, the one way every story does it: poll a check until it
gives what is awaited, against a deadline that holds on a loaded two-core machine, and fail naming
what was awaited and the last thing seen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def until(
    check: Callable[[], T],
    what: str,
    timeout: float = 180.0,
    every: float = 0.1,
    *,
    done: Callable[[T], object] = bool,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """The first value `check()` returns that `done` accepts (by default: the first truthy one);
    AssertionError naming `what` after `timeout` seconds. A check that raises one of `ignoring` (a
    service still starting, a request that timed out) has not seen it yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            seen = check()
        except ignoring as error:
            last: object = error
        else:
            if done(seen):
                return seen
            last = seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last seen: {last!r})")
        time.sleep(every)


async def until_async(
    check: Callable[[], Awaitable[T]],
    what: str,
    timeout: float = 180.0,
    every: float = 0.1,
    *,
    done: Callable[[T], object] = bool,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """`until` for a check that is awaited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            seen = await check()
        except ignoring as error:
            last: object = error
        else:
            if done(seen):
                return seen
            last = seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last seen: {last!r})")
        await asyncio.sleep(every)


DONE = ("completed", "partial", "failed", "cancelled")


def variation(
    api: Any, vid: str, done: Callable[[dict[str, Any]], bool] = lambda v: v["status"] in DONE, timeout: float = 180.0
) -> dict[str, Any]:
    """The variation `vid` as `GET /variations/{id}` shows it once `done` says so. `api` is the stories'
    client: a service that dies meanwhile fails the wait at once, with its log."""

    def shown() -> dict[str, Any] | None:
        api.services.check()
        r = api.get(f"/api/images/variations/{vid}")
        return r.json() if r.status_code == 200 and done(r.json()) else None

    return until(shown, f"variation {vid}", timeout)
