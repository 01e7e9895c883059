"""One family job: draw the master, cut its derivatives, store them, and say how it went.
A failure is an event (FamilyFailed), never a crashed consumer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from imagegen.config import Settings
from inference import compiled, preview
from inference.cutting import Cut, Encoding, cut_master
from inference.framing import Subject
from inference.generation import GenerationParams, OnLatents, OnStep, batch_key, generate_batch
from inference.models import Pipelines
from storage import Storage, derivative_key, master_key
from streams import brand, operational, outcomes
from streams import messages as m
from streams.families import FamilyTable

log = logging.getLogger(__name__)

WORKER = f"{socket.gethostname()}:{os.getpid()}"
Cancelled = Callable[[m.GenerateFamily], bool]  # asked from the drawing thread too
Report = Callable[[operational.Progress], None]  # called on the event loop
PREVIEW_MIN_INTERVAL_S = 0.5  # previews at most twice a second, whatever the steps' pace


@dataclass(frozen=True)
class Drawn:
    master: bytes
    cuts: list[Cut]
    subject: Subject
    scheduler: str
    weights: str


def memory(device: str) -> tuple[int | None, int | None, int | None]:
    """Where the pipelines live: free bytes (the GPU's, or the machine's available memory), and on a
    GPU its total memory and the bytes torch has allocated on it (None elsewhere, or unknown)."""
    try:
        if device.startswith("cuda"):
            import torch

            where = torch.device(device)
            free, total = torch.cuda.mem_get_info(where)
            return int(free), int(total), int(torch.cuda.memory_allocated(where))
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), None, None
    except (RuntimeError, ValueError, OSError):
        return None, None, None


def public_url(settings: Settings, variation: str, name: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/api/images/{variation}/{name}"


class FamilyJobs:
    def __init__(self, settings: Settings, table: FamilyTable, storage: Storage) -> None:
        self.settings = settings
        self.table = table
        self.storage = storage
        self.pipelines = Pipelines(settings=settings)
        self.encoding = Encoding(
            quality={"webp": settings.webp_quality, "avif": settings.avif_quality, "jpeg": settings.jpeg_quality},
            webp_effort=settings.webp_effort,
        )
        # One drawing at a time per worker: a pipeline is not re-entrant and owns the device.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="draw")
        self.releasing = threading.Event()  # set when stopping: the drawing ends at its next step
        self.preview_interval_s = PREVIEW_MIN_INTERVAL_S
        self.warming = False
        self.sizes = compiled.batch_sizes(settings.batch_size)  # compiled batch sizes, where compiled
        self._drawing = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """A take being handled, from its first FamilyStarted to its last outcome sent."""
        self._drawing += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._drawing -= 1
            if not self._drawing:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Whether no drawing is in flight, waiting up to `timeout` seconds for the one that is."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def heartbeat(self, families: tuple[str, ...]) -> operational.WorkerHeartbeat:
        free, total, allocated = memory(self.pipelines.device)
        return operational.WorkerHeartbeat(
            worker=WORKER,
            families=families,
            models_loaded=tuple(self.pipelines.loaded()),
            device=self.pipelines.device,
            free_memory_bytes=free,
            device_memory_total_bytes=total,
            device_memory_allocated_bytes=allocated,
            state="warming" if self.warming else "ready",
            interval_s=self.settings.heartbeat_interval_s,
            sent_at=m.utcnow(),
        )

    def compiles(self, model: str) -> bool:
        """Whether `model`'s pipeline has a compiled UNet (SPEED_LEVERS compile), loading it if need be."""
        return compiled.is_compiled(self.pipelines.get(model)[1])

    def warm(self, model: str, families: tuple[str, ...]) -> None:
        """Draw one step at every shape served, so each is compiled before the first job (in the
        drawing thread, so jobs queue behind it; `warming` says so in the heartbeat meanwhile)."""
        spec, pipeline = self.pipelines.get(model)
        shapes, seconds = compiled.warm(pipeline, spec, self.table.subset(families), self.sizes)
        log.info("compiled %s for %d shapes (batch sizes %s) in %.0f s", model, shapes, self.sizes, seconds)

    def started(self, job: m.GenerateFamily) -> m.FamilyStarted:
        return m.FamilyStarted(**outcomes.about(job, "started"), worker=WORKER)

    def progress(self, job: m.GenerateFamily, step: int, steps: int) -> operational.FamilyProgress:
        return operational.FamilyProgress(**outcomes.at_step(job, step, steps))

    def preview(
        self, job: m.GenerateFamily, step: int, steps: int, image: tuple[bytes, int, int]
    ) -> operational.FamilyPreview:
        data, width, height = image
        encoded = base64.b64encode(data).decode()
        return operational.FamilyPreview(
            **outcomes.at_step(job, step, steps), width=width, height=height, image=encoded
        )

    def _draw(self, batch: list[m.GenerateFamily], on_step: OnStep, on_latents: OnLatents | None = None) -> list[Drawn]:
        first = batch[0]
        family = self.table.get(first.family)
        spec, pipeline = self.pipelines.get(first.generation.model)
        on_step(0, first.generation.steps)  # cancelled while waiting for the device: not drawn at all
        pad = compiled.padded(len(batch), self.sizes) if compiled.is_compiled(pipeline) else None
        masters = generate_batch(pipeline, spec, [_params(job) for job in batch], family, on_step, on_latents, pad)
        encoding = self.encoding
        scheduler = type(cast(Any, pipeline).scheduler).__name__  # diffusers sets components at run time
        weights = self.pipelines.fingerprint(first.generation.model)
        drawn = []
        for job, master in zip(batch, masters, strict=True):
            g = job.generation
            metadata = {
                "prompt": g.prompt,
                "negative_prompt": brand.negative_prompt(job),
                "seed": str(g.seed),
                "model": g.model,
                "steps": str(g.steps),
                "guidance": str(g.guidance),
                "refine": str(g.refine),
                "variation": job.name,
                "family": job.family,
            }
            focal = (job.focal_point.x, job.focal_point.y) if job.focal_point else None
            master_webp, subject, cuts = cut_master(master, family.derivatives, encoding, metadata, focal)
            drawn.append(Drawn(master_webp, cuts, subject, scheduler=scheduler, weights=weights))
        return drawn

    async def _store(
        self, variation: str, name: str, key: str, data: bytes, size: tuple[int, int], piece: Cut | None = None
    ) -> m.StoredImage:
        content_type = piece.content_type if piece else "image/webp"
        await self.storage.put(key, data, content_type)
        url = public_url(self.settings, variation, name)
        framing: dict[str, Any] = {}
        if piece is not None:
            framing = dict(crop=piece.crop, crop_reason=piece.reason, crop_clear=piece.clear, scale=piece.scale)
        return m.StoredImage(
            name=name,
            key=key,
            url=url,
            width=size[0],
            height=size[1],
            bytes=len(data),
            content_type=content_type,
            **framing,
        )

    async def run(self, job: m.GenerateFamily) -> outcomes.Outcome:
        return (await self.run_batch([job]))[0]

    async def run_batch(
        self, batch: list[m.GenerateFamily], cancelled: Cancelled = lambda job: False, report: Report | None = None
    ) -> list[outcomes.Outcome]:
        """Jobs of one family that can share a pipeline call (`batches`), drawn in one call; each
        gets its own outcome. Each denoising step is reported; the call stops at the step by which
        every job of it is `cancelled`, and a cancelled job's drawing is not stored."""
        began = time.perf_counter()
        loop = asyncio.get_running_loop()

        deadline = time.monotonic() + self.settings.generation_deadline_s

        def on_step(step: int, steps: int) -> None:  # in the drawing thread
            if time.monotonic() > deadline:
                raise outcomes.DeadlineExceeded(
                    f"drawing exceeded the {self.settings.generation_deadline_s:g} s deadline at step {step} of {steps}"
                )
            if self.releasing.is_set():
                raise outcomes.Released(f"released at step {step} of {steps}: the worker is stopping")
            if report is not None and step:
                for job in batch:
                    loop.call_soon_threadsafe(report, self.progress(job, step, steps))
            if all(cancelled(job) for job in batch):
                raise outcomes.Stopped(step, steps)

        every, last_preview = self.settings.preview_every_steps, [0.0]

        def on_latents(step: int, steps: int, latents: Any) -> None:  # in the drawing thread
            # every few steps, not the last (the master follows it), at most twice a second
            if report is None or step % every or step >= steps:
                return
            if time.monotonic() - last_preview[0] < self.preview_interval_s:
                return
            last_preview[0] = time.monotonic()
            for job, image in zip(batch, preview.previews(latents), strict=True):
                loop.call_soon_threadsafe(report, self.preview(job, step, steps, image))

        try:
            # the drawing thread logs with the jobs' identity too (streams/logs.py)
            drawn = await loop.run_in_executor(
                self.executor,
                contextvars.copy_context().run,
                self._draw,
                batch,
                on_step,
                on_latents if every and report is not None else None,
            )
        except outcomes.Released:
            raise
        except outcomes.Stopped as stop:
            log.info(
                "%s of %s stopped at step %d of %d: cancelled",
                batch[0].family,
                [j.name for j in batch],
                stop.step,
                stop.steps,
            )
            return [outcomes.cancelled_job(job, stop.step, stop.steps) for job in batch]
        except Exception as exc:
            log.exception("family %s failed for %s", batch[0].family, [job.name for job in batch])
            oom = outcomes.out_of_memory(exc)
            if oom:  # the worker keeps serving: free what the failed call held
                await loop.run_in_executor(self.executor, self.pipelines.release_memory)
            return [outcomes.failed(job, exc, oom) for job in batch]
        ended: list[outcomes.Outcome] = []
        for job, one in zip(batch, drawn, strict=True):
            if cancelled(job):  # drawn with others that were not: not stored
                ended.append(outcomes.cancelled_job(job, job.generation.steps, job.generation.steps))
                continue
            try:
                ended.append(await self._completed(job, one, time.perf_counter() - began))
            except Exception as exc:
                log.exception("storing family %s of %s failed", job.family, job.name)
                ended.append(outcomes.failed(job, exc, False))
        return ended

    async def _completed(self, job: m.GenerateFamily, drawn: Drawn, duration_s: float) -> m.FamilyCompleted:
        family = self.table.get(job.family)
        master = await self._store(
            job.name, family.name, master_key(job.name, family.name), drawn.master, (family.width, family.height)
        )
        derivatives = []
        for c in drawn.cuts:
            key = derivative_key(job.name, c.name, c.extension)
            derivatives.append(await self._store(job.name, c.name, key, c.data, (c.width, c.height), c))
        box = drawn.subject.box
        return m.FamilyCompleted(
            **outcomes.about(job, "completed"),
            master=master,
            derivatives=tuple(derivatives),
            model=job.generation.model,
            seed=job.generation.seed,
            duration_s=round(duration_s, 3),
            generation=job.generation,
            scheduler=drawn.scheduler,
            weights=drawn.weights,
            warnings=outcomes.weights_warning(job, drawn.weights),
            subject=(round(box.left), round(box.top), round(box.width), round(box.height)),
            subject_reason=drawn.subject.reason,
        )


def _params(job: m.GenerateFamily) -> GenerationParams:
    g = job.generation
    return GenerationParams(g.prompt, brand.negative_prompt(job), g.seed, g.steps, g.guidance, g.refine)


def batches(jobs: list[m.GenerateFamily]) -> list[list[m.GenerateFamily]]:
    """Waiting jobs grouped into those that can share one pipeline call: same model, and the same
    steps, guidance and empty-or-not negative prompt. Order is kept within and across groups."""
    groups: dict[tuple[object, ...], list[m.GenerateFamily]] = {}
    for job in jobs:
        groups.setdefault((job.generation.model, *batch_key(_params(job))), []).append(job)
    return list(groups.values())
