"""What a family job says: the fields every message about it carries, how it ends (completed, failed
and whether a retry may cure it, cancelled at a step), and the reasons a drawing stops early."""

from __future__ import annotations

from typing import Any

from streams import messages as m

# Errors a second attempt may cure (a busy or out-of-memory device, a storage hiccup).
RETRYABLE = (MemoryError, TimeoutError, ConnectionError, OSError)


def out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA's) or the host's MemoryError, without importing torch here."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


Outcome = m.FamilyCompleted | m.FamilyFailed | m.FamilyCancelled


class Released(Exception):
    """The worker is stopping and let go of the drawing: nothing is sent for it, and its offset is
    not committed, so another worker draws it."""


class DeadlineExceeded(TimeoutError):
    """A drawing ran past GENERATION_DEADLINE_S: it stops at its next step and its jobs fail, retryably."""


class Stopped(Exception):
    """Every job of the call was cancelled: the drawing stops at `step` of `steps`."""

    def __init__(self, step: int, steps: int) -> None:
        super().__init__(f"cancelled at step {step} of {steps}")
        self.step, self.steps = step, steps


def about(job: m.GenerateFamily, outcome: str) -> dict[str, Any]:
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


def weights_warning(job: m.GenerateFamily, weights: str) -> tuple[str, ...]:
    if job.expected_weights is None or job.expected_weights == weights:
        return ()
    return (
        f"model {job.generation.model!r} weights changed since the last round "
        f"({job.expected_weights} -> {weights}): the pixels may differ",
    )


def at_step(job: m.GenerateFamily, step: int, steps: int) -> dict[str, Any]:
    return dict(
        variation_id=job.variation_id,
        job_id=job.job_id,
        family=job.family,
        round=job.round,
        attempt=job.attempt,
        step=step,
        steps=steps,
        sent_at=m.utcnow(),
    )


def cancelled_job(job: m.GenerateFamily, at_step: int, steps: int) -> m.FamilyCancelled:
    return m.FamilyCancelled(**about(job, "cancelled"), at_step=at_step, steps=steps)


def failed(job: m.GenerateFamily, exc: Exception, oom: bool) -> m.FamilyFailed:
    return m.FamilyFailed(
        **about(job, "failed"),
        error_kind=type(exc).__name__,
        message=str(exc) or type(exc).__name__,
        retryable=oom or isinstance(exc, RETRYABLE),
    )
