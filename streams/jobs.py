"""One family job: draw the master, cut its derivatives, store them, and say how it went.
A failure is an event (FamilyFailed), never a crashed consumer."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from imagegen.config import Settings
from imagegen.storage import FileStorage, derivative_key, master_key
from inference.cutting import Cut, cut, encode_webp
from inference.generation import GenerationParams, generate
from inference.models import Pipelines
from streams import messages as m
from streams.families import FamilyTable

log = logging.getLogger(__name__)

WORKER = f"{socket.gethostname()}:{os.getpid()}"
# Errors a second attempt may cure (a busy or out-of-memory device, a storage hiccup).
RETRYABLE = (MemoryError, TimeoutError, ConnectionError, OSError)


def out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA's) or the host's MemoryError, without importing torch here."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


@dataclass(frozen=True)
class Drawn:
    master: bytes
    cuts: list[Cut]
    scheduler: str
    weights: str


def _about(job: m.GenerateFamily, outcome: str) -> dict[str, Any]:
    """The fields every event about a job carries; its id is derived from the job and the outcome."""
    return dict(
        event_id=m.derive_id(job.job_id, outcome),
        variation_id=job.variation_id,
        occurred_at=m.utcnow(),
        job_id=job.job_id,
        family=job.family,
        round=job.round,
        attempt=job.attempt,
    )


def _weights_warning(job: m.GenerateFamily, weights: str) -> tuple[str, ...]:
    if job.expected_weights is None or job.expected_weights == weights:
        return ()
    return (
        f"model {job.generation.model!r} weights changed since the last round "
        f"({job.expected_weights} -> {weights}): the pixels may differ",
    )


def free_memory(device: str) -> int | None:
    """Free bytes where the pipelines live: the GPU's, or the machine's available memory."""
    try:
        if device.startswith("cuda"):
            import torch

            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (RuntimeError, ValueError, OSError):
        return None


def public_url(settings: Settings, variation: str, name: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/api/images/{variation}/{name}"


class FamilyJobs:
    def __init__(self, settings: Settings, table: FamilyTable, storage: FileStorage) -> None:
        self.settings = settings
        self.table = table
        self.storage = storage
        self.pipelines = Pipelines()
        # One drawing at a time per worker: a pipeline is not re-entrant and owns the device.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="draw")

    def heartbeat(self, families: tuple[str, ...]) -> m.WorkerHeartbeat:
        return m.WorkerHeartbeat(
            worker=WORKER,
            families=families,
            models_loaded=tuple(self.pipelines.loaded()),
            device=self.pipelines.device,
            free_memory_bytes=free_memory(self.pipelines.device),
            interval_s=self.settings.heartbeat_interval_s,
            sent_at=m.utcnow(),
        )

    def started(self, job: m.GenerateFamily) -> m.FamilyStarted:
        return m.FamilyStarted(**_about(job, "started"), worker=WORKER)

    def _draw(self, job: m.GenerateFamily) -> Drawn:
        family = self.table.get(job.family)
        spec, pipeline = self.pipelines.get(job.generation.model)
        g = job.generation
        params = GenerationParams(g.prompt, g.negative_prompt, g.seed, g.steps, g.guidance)
        master = generate(pipeline, spec, params, family)
        metadata = {
            "prompt": g.prompt,
            "negative_prompt": g.negative_prompt,
            "seed": str(g.seed),
            "model": g.model,
            "steps": str(g.steps),
            "guidance": str(g.guidance),
            "variation": job.name,
            "family": job.family,
        }
        quality = self.settings.webp_quality
        return Drawn(
            encode_webp(master, quality, metadata),
            cut(master, family.derivatives, quality, metadata),
            scheduler=type(pipeline.scheduler).__name__,
            weights=self.pipelines.fingerprint(g.model),
        )

    async def _store(
        self,
        variation: str,
        name: str,
        key: str,
        data: bytes,
        size: tuple[int, int],
        crop: tuple[int, int, int, int] | None = None,
    ) -> m.StoredImage:
        await self.storage.put(key, data, "image/webp")
        url = public_url(self.settings, variation, name)
        return m.StoredImage(name=name, key=key, url=url, width=size[0], height=size[1], bytes=len(data), crop=crop)

    async def run(self, job: m.GenerateFamily) -> m.FamilyCompleted | m.FamilyFailed:
        began = time.perf_counter()
        try:
            drawn = await asyncio.get_running_loop().run_in_executor(self.executor, self._draw, job)
            family = self.table.get(job.family)
            master = await self._store(job.name, family.name, master_key(job.name, family.name), drawn.master,
                                       (family.width, family.height))  # fmt: skip
            derivatives = [
                await self._store(
                    job.name, c.name, derivative_key(job.name, c.name), c.data, (c.width, c.height), c.crop
                )
                for c in drawn.cuts
            ]
        except Exception as exc:
            log.exception("family %s of %s failed", job.family, job.name)
            oom = out_of_memory(exc)
            if oom:  # the worker keeps serving: free what the failed call held
                await asyncio.get_running_loop().run_in_executor(self.executor, self.pipelines.release_memory)
            return m.FamilyFailed(
                **_about(job, "failed"),
                error_kind=type(exc).__name__,
                message=str(exc) or type(exc).__name__,
                retryable=oom or isinstance(exc, RETRYABLE),
            )
        return m.FamilyCompleted(
            **_about(job, "completed"),
            master=master,
            derivatives=tuple(derivatives),
            model=job.generation.model,
            seed=job.generation.seed,
            duration_s=round(time.perf_counter() - began, 3),
            generation=job.generation,
            scheduler=drawn.scheduler,
            weights=drawn.weights,
            warnings=_weights_warning(job, drawn.weights),
        )
