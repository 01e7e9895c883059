"""Operational messages: what keeps people and workers informed and in step, outside the event log.
Worker heartbeats (`imagegen.workers`), each job's denoising steps (`imagegen.progress`) and the
operators' word to every worker (`imagegen.control`). Like the log's messages, each has a wire name
and a version; none is replayed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from streams.messages import Message, derive_id


class WorkerHeartbeat(Message):
    """A worker says it is alive, what it serves and what it has loaded. Version 2 adds, on a GPU,
    the device's total memory and what torch holds of it (None on a CPU and in version 1)."""

    type: Literal["WorkerHeartbeat"] = "WorkerHeartbeat"
    version: Literal[2] = 2  # type: ignore[assignment]
    worker: str
    families: tuple[str, ...]
    models_loaded: tuple[str, ...]
    device: str
    free_memory_bytes: int | None
    device_memory_total_bytes: int | None = None
    device_memory_allocated_bytes: int | None = None
    # warming: compiling the shapes it serves before its first job (inference/compiled.py)
    state: Literal["warming", "ready"] = "ready"
    interval_s: float
    sent_at: datetime

    @property
    def message_id(self) -> uuid.UUID:
        return derive_id(self.worker, self.sent_at.isoformat())

    @property
    def key(self) -> bytes:
        return self.worker.encode()


class JobStep(Message):
    """Where a job's drawing is (imagegen.progress): ephemeral live status, not part of the log."""

    variation_id: uuid.UUID
    job_id: uuid.UUID
    family: str
    round: int
    attempt: int
    step: int
    steps: int
    sent_at: datetime


class FamilyProgress(JobStep):
    """A denoising step done (imagegen.progress): ephemeral live status, not part of the log."""

    type: Literal["FamilyProgress"] = "FamilyProgress"

    @property
    def message_id(self) -> uuid.UUID:
        return derive_id(self.job_id, self.step)


class FamilyPreview(JobStep):
    """The picture forming at a denoising step (imagegen.progress): a small WebP made from the latents
    (inference/preview.py), every PREVIEW_EVERY_STEPS steps and at most twice a second; ephemeral."""

    type: Literal["FamilyPreview"] = "FamilyPreview"
    width: int
    height: int
    image: str = Field(max_length=400_000, description="the WebP, base64")

    @property
    def message_id(self) -> uuid.UUID:
        return derive_id(self.job_id, "preview", self.step)


Progress = FamilyProgress | FamilyPreview

ALL_FAMILIES = "*"


class QueueControl(Message):
    """An operator holds or releases a family's jobs (`*`: every family's), normal and DX alike, on
    every worker, until said otherwise: `imagegen queue pause | resume`."""

    type: Literal["QueueControl"] = "QueueControl"
    family: str = Field(min_length=1, max_length=64)
    paused: bool
    sent_at: datetime

    @property
    def message_id(self) -> uuid.UUID:
        return derive_id(self.family, self.paused, self.sent_at.isoformat())

    @property
    def key(self) -> bytes:
        return self.family.encode()
