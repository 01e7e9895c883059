"""What the stories send, built one way: the create-variation body of `POST /variations`, and the
commands, jobs and events of the log. Each builder's defaults are what most stories send (the tiny
model, 2 steps); a story names what it varies."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from streams import messages as m

# HTTP bodies: the API's camelCase JSON


def generation_body(prompt: str, seed: int, *, model: str | None = "tiny", steps: int | None = 2, **more: Any) -> dict:
    """The `generation` of a create-variation body; `model` or `steps` None leaves it out (the API's
    default), `more` adds fields by their JSON names (`negativePrompt`, `guidanceScale`)."""
    body: dict[str, Any] = {"prompt": prompt, "seed": seed}
    if model is not None:
        body["model"] = model
    if steps is not None:
        body["inferenceSteps"] = steps
    return {**body, **more}


def create_body(
    name: str, generation: dict, *, families: tuple[str, ...] | list[str] = ("square",), **more: Any
) -> dict:
    """A `POST /variations` body; `more` adds fields by their JSON names (`category`, `variants`)."""
    return {"name": name, "families": list(families), "generation": generation, **more}


# messages on the log


def generation(
    prompt: str, seed: int, *, model: str = "tiny", steps: int = 2, guidance: float = 4.0, **more: Any
) -> m.Generation:
    """A command's or job's `Generation`."""
    return m.Generation(prompt=prompt, seed=seed, model=model, steps=steps, guidance=guidance, **more)


def create_variation(
    name: str,
    *,
    families: Sequence[str],
    generation: m.Generation,
    command_id: uuid.UUID | None = None,
    **more: Any,
) -> m.CreateVariation:
    """A `CreateVariation` of `name` (its id by the naming rule), under a fresh command id unless given."""
    return m.CreateVariation(
        command_id=command_id or uuid.uuid4(),
        variation_id=m.variation_id(name),
        name=name,
        families=tuple(families),
        generation=generation,
        **more,
    )


def generate_family(
    name: str,
    family: str,
    generation: m.Generation,
    *,
    job_id: uuid.UUID | None = None,
    variation_id: uuid.UUID | None = None,
    round: int = 1,
    **more: Any,
) -> m.GenerateFamily:
    """A `GenerateFamily` job of `name`'s `family`, under a fresh job id unless given, for the variation
    named `name` unless `variation_id` says otherwise."""
    return m.GenerateFamily(
        job_id=job_id or uuid.uuid4(),
        variation_id=variation_id or m.variation_id(name),
        name=name,
        family=family,
        round=round,
        generation=generation,
        **more,
    )


def family_failed(
    variation_id: uuid.UUID,
    family: str,
    *,
    job_id: uuid.UUID,
    message: str = "the drawing crashed",
    error_kind: str = "GenerationError",
    retryable: bool = True,
    round: int = 1,
    attempt: int = 1,
) -> m.FamilyFailed:
    """The `FamilyFailed` a crashed drawing of the job reports, now."""
    return m.FamilyFailed(
        event_id=m.derive_id(job_id, "failed"),
        variation_id=variation_id,
        occurred_at=m.utcnow(),
        job_id=job_id,
        family=family,
        round=round,
        attempt=attempt,
        error_kind=error_kind,
        message=message,
        retryable=retryable,
    )
