"""The priority gate: one family's drawing, one take at a time, DX work first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class PriorityGate:
    """One family's drawing, one take at a time, DX work first: a normal take waits while a DX take
    is waiting or drawing, so DX work starts as soon as the take in flight ends."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._dx_waiting = 0
        self._busy = False

    @contextlib.asynccontextmanager
    async def turn(self, dx: bool) -> AsyncIterator[None]:
        async with self._changed:
            self._dx_waiting += dx
            try:
                await self._changed.wait_for(lambda: not self._busy and (dx or not self._dx_waiting))
            finally:
                self._dx_waiting -= dx
            self._busy = True
        try:
            yield
        finally:
            async with self._changed:
                self._busy = False
                self._changed.notify_all()
