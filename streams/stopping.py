"""A worker told to stop (SIGTERM, SIGINT) takes no new job and lets the take in flight finish for
SHUTDOWN_GRACE_S; then it releases that take at its next step, uncommitted, for another worker to draw."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from streams.control import QueueControls
from streams.jobs import FamilyJobs

log = logging.getLogger(__name__)


async def drain(jobs: FamilyJobs, controls: QueueControls, grace_s: float) -> None:
    """Take no new job, let the take in flight finish for `grace_s`, then release it at its next step."""
    controls.stopping = True
    if await jobs.wait_idle(0):
        return
    log.info("stopping: finishing the job in flight (up to %.0f s)", grace_s)
    if await jobs.wait_idle(grace_s):
        log.info("stopping: the job in flight finished")
        return
    log.warning("stopping: releasing the job in flight at its next step; another worker will draw it")
    jobs.releasing.set()
    await jobs.wait_idle(60.0)


class StoppingWorker(faust.Worker):
    """Faust's worker, which on SIGTERM or SIGINT first drains (`drain`): the job in flight finishes
    and its outcome is sent, or it is released uncommitted. A second signal stops at once."""

    _draining: asyncio.Future[None] | None = None

    def _schedule_shutdown(self, signal: Any) -> None:
        if self._draining is not None:
            super()._schedule_shutdown(signal)
            return

        async def drain_then_stop() -> None:
            try:
                await self.app.drain()
            finally:
                super(StoppingWorker, self)._schedule_shutdown(signal)

        self._draining = asyncio.ensure_future(drain_then_stop())
