"""Projectors in processes of their own, each applying its share of a topic's partitions: a replay's
Python work (decoding, folding, copying rows) on every core instead of one. Partitions hold
disjoint variations, so the processes never touch the same rows, and each records its own
partitions' positions."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as ProcessEvent

from projections.projector import Projector

log = logging.getLogger(__name__)


def default_processes() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class ProjectorPool:
    """`processes` projectors over `topic`, run (and stopped) like one; `applied` counts for all."""

    def __init__(self, bootstrap_servers: str, database_url: str, topic: str, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.bootstrap_servers = bootstrap_servers
        self.database_url = database_url
        self.topic = topic
        self.processes = processes
        self.applied = 0

    async def run(self, stop: asyncio.Event) -> None:
        # spawned, not forked: a fork would copy this process's event loop and open connections
        context = multiprocessing.get_context("spawn")
        halt, applied = context.Event(), context.Value("q", 0)
        children = [
            context.Process(
                target=_child,
                args=(self.bootstrap_servers, self.database_url, self.topic, (i, self.processes), applied, halt),
                name=f"projector-{i + 1}-of-{self.processes}",
                daemon=True,
            )
            for i in range(self.processes)
        ]
        for child in children:
            child.start()
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                self.applied = applied.value
                if failed := [c for c in children if not c.is_alive()]:
                    raise RuntimeError(f"{failed[0].name} stopped (exit code {failed[0].exitcode}): see its log")
                await asyncio.wait([stopping], timeout=0.05)
            halt.set()  # each finishes the batch it is applying
            for child in children:
                await asyncio.to_thread(child.join)
            if failed := [c for c in children if c.exitcode != 0]:
                raise RuntimeError(f"{failed[0].name} failed (exit code {failed[0].exitcode}): see its log")
            self.applied = applied.value
        finally:
            stopping.cancel()
            halt.set()
            for child in children:
                child.join(timeout=10)
                if child.is_alive():
                    child.kill()


def _child(
    bootstrap_servers: str,
    database_url: str,
    topic: str,
    share: tuple[int, int],
    applied: Synchronized[int],
    halt: ProcessEvent,
) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s projector {share[0] + 1}/{share[1]} %(message)s")
    asyncio.run(
        _project(Projector(bootstrap_servers, database_url, topic, migrate=False, lanes=1, share=share), applied, halt)
    )


async def _project(projector: Projector, applied: Synchronized[int], halt: ProcessEvent) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    told = 0
    while not task.done():
        await asyncio.wait([task], timeout=0.02)
        if halt.is_set():
            stop.set()
        if projector.applied != told:
            with applied.get_lock():
                applied.value += projector.applied - told
            told = projector.applied
    task.result()
