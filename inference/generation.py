"""Drawing a family's master with an SDXL pipeline."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyvips
import torch

from inference.cutting import resize_to
from inference.models import ModelSpec
from streams.families import Family
from streams.limits import MAX_GUIDANCE, MAX_SEED, MAX_STEPS

MIN_SIDE = 64


class InvalidGenerationInput(ValueError):
    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"`{argument}` {message}")
        self.argument = argument


@dataclass(frozen=True)
class GenerationParams:
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float


def draw_size(family: Family, spec: ModelSpec) -> tuple[int, int]:
    """The size `spec` draws `family` at: its SDXL bucket times the model's draw scale, in
    multiples of 8 (the VAE's factor), at least 64."""

    def side(n: int) -> int:
        return max(MIN_SIDE, round(n * spec.draw_scale / 8) * 8)

    return side(family.drawn_width), side(family.drawn_height)


def check_inputs(params: GenerationParams) -> None:
    if not isinstance(params.prompt, str) or not params.prompt.strip():
        raise InvalidGenerationInput("prompt", f"must be a non-empty string, got {params.prompt!r}")
    if not isinstance(params.negative_prompt, str):
        raise InvalidGenerationInput("negative_prompt", f"must be a string, got {params.negative_prompt!r}")
    if not _is_int(params.seed) or not 0 <= params.seed <= MAX_SEED:
        raise InvalidGenerationInput("seed", f"must be an integer in 0..{MAX_SEED}, got {params.seed!r}")
    if not _is_int(params.steps) or not 1 <= params.steps <= MAX_STEPS:
        raise InvalidGenerationInput("steps", f"must be an integer in 1..{MAX_STEPS}, got {params.steps!r}")
    if (
        isinstance(params.guidance, bool)
        or not isinstance(params.guidance, int | float)
        or not math.isfinite(params.guidance)
        or not 0.0 <= params.guidance <= MAX_GUIDANCE
    ):
        raise InvalidGenerationInput("guidance", f"must be a number in 0..{MAX_GUIDANCE}, got {params.guidance!r}")


def batch_key(params: GenerationParams) -> tuple[int, float, bool]:
    """Jobs that can share one pipeline call: one call has one step count and one guidance scale, and
    SDXL replaces an empty negative prompt by zeros only when every negative prompt is empty."""
    return params.steps, params.guidance, params.negative_prompt == ""


def generate(pipeline: Any, spec: ModelSpec, params: GenerationParams, family: Family) -> pyvips.Image:
    """Draw `family`'s master: an sRGB uchar image of exactly the family's master size.

    The same pipeline, params and device give the same pixels.
    """
    return generate_batch(pipeline, spec, [params], family)[0]


OnStep = Callable[[int, int], None]


def generate_batch(
    pipeline: Any, spec: ModelSpec, batch: list[GenerationParams], family: Family, on_step: OnStep | None = None
) -> list[pyvips.Image]:
    """Draw several masters of one family in one pipeline call, one generator per job, so each job
    gets the picture it would get alone (up to the last bit of floating-point rounding).

    `on_step(step, steps)` is called after each denoising step (from 1); what it raises stops the
    drawing there and comes out of this call."""
    # 1. Check inputs
    if not batch:
        raise InvalidGenerationInput("batch", "must hold at least one job")
    for params in batch:
        check_inputs(params)
    if len({batch_key(p) for p in batch}) != 1:
        raise InvalidGenerationInput("batch", "must share steps, guidance and whether the negative prompt is empty")
    first = batch[0]
    width, height = draw_size(family, spec)

    # 2. Seed each job. The starting noise is drawn on the CPU, so it is the same whatever the device.
    generators = [torch.Generator("cpu").manual_seed(p.seed) for p in batch]

    def step_ended(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if on_step is not None:
            on_step(index + 1, getattr(pipe, "num_timesteps", None) or first.steps)
        return tensors

    # 3. Draw at the family's bucket. An empty negative prompt is None, so that SDXL uses zeros
    # for it (force_zeros_for_empty_prompt), as it was trained.
    with torch.inference_mode():
        result = pipeline(
            prompt=[p.prompt for p in batch],
            negative_prompt=[p.negative_prompt for p in batch] if first.negative_prompt else None,
            width=width,
            height=height,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            generator=generators,
            output_type="np",
            callback_on_step_end=step_ended,
            callback_on_step_end_tensor_inputs=[],
        )

    masters = []
    for image in result.images:
        # 4. To an 8-bit sRGB image, rounding as diffusers' own numpy_to_pil does
        pixels = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
        drawn = pyvips.Image.new_from_array(np.ascontiguousarray(pixels)).copy(interpretation="srgb")
        # 5. Resize to the master size (the bucket's ratio is near, not equal, to the family's)
        # in memory, so that it no longer refers to the numpy array
        masters.append(resize_to(drawn, family.width, family.height).copy_memory())
    return masters


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
