"""Drawing a family's master with an SDXL pipeline: at the family's SDXL bucket, then, with a hi-res
pass (`refine`), upscaled to the master's size and refined there by SDXL img2img on the same components
at a low strength, as InvokeAI's and ComfyUI's "hi-res fix" does."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyvips
import torch

from inference.cutting import resize_to
from inference.models import ModelSpec
from streams.families import Family
from streams.limits import MAX_GUIDANCE, MAX_REFINE, MAX_SEED, MAX_STEPS

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
    refine: float = 0.0  # the hi-res pass's img2img strength (0: none)


def draw_size(family: Family, spec: ModelSpec) -> tuple[int, int]:
    """The size `spec` draws `family` at: its SDXL bucket times the model's draw scale, in
    multiples of 8 (the VAE's factor), at least 64."""
    return _scaled(family.drawn_width, spec), _scaled(family.drawn_height, spec)


def refine_size(family: Family, spec: ModelSpec) -> tuple[int, int]:
    """The size the hi-res pass refines at: the family's master size times the model's draw scale, in
    multiples of 8 (the VAE's factor); then resized to the exact master size like any drawing."""
    return _scaled(family.width, spec), _scaled(family.height, spec)


def _scaled(side: int, spec: ModelSpec) -> int:
    return max(MIN_SIDE, round(side * spec.draw_scale / 8) * 8)


def refine_steps(steps: int, strength: float) -> int:
    """The img2img call's step count: `steps` scheduled, of which the last `strength` share run, and
    at least one does."""
    return max(steps, math.ceil(1 / strength))


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
    if (
        isinstance(params.refine, bool)
        or not isinstance(params.refine, int | float)
        or not 0 <= params.refine <= MAX_REFINE
    ):
        raise InvalidGenerationInput("refine", f"must be a number in 0..{MAX_REFINE}, got {params.refine!r}")


def batch_key(params: GenerationParams) -> tuple[int, float, bool, float]:
    """Jobs that can share one pipeline call: one call has one step count, one guidance scale and one
    refine strength, and SDXL replaces an empty negative prompt by zeros only when every negative prompt
    is empty."""
    return params.steps, params.guidance, params.negative_prompt == "", params.refine


def generate(pipeline: Any, spec: ModelSpec, params: GenerationParams, family: Family) -> pyvips.Image:
    """Draw `family`'s master: an sRGB uchar image of exactly the family's master size.

    The same pipeline, params and device give the same pixels.
    """
    return generate_batch(pipeline, spec, [params], family)[0]


OnStep = Callable[[int, int], None]
OnLatents = Callable[[int, int, Any], None]  # (step, steps, the batch's latents at that step)


def generate_batch(
    pipeline: Any,
    spec: ModelSpec,
    batch: list[GenerationParams],
    family: Family,
    on_step: OnStep | None = None,
    on_latents: OnLatents | None = None,
    pad_to: int | None = None,
) -> list[pyvips.Image]:
    """Draw several masters of one family in one pipeline call, one generator per job, so each job
    gets the picture it would get alone (up to the last bit of floating-point rounding).

    `on_step(step, steps)` is called after each denoising step (from 1); what it raises stops the
    drawing there and comes out of this call. `on_latents(step, steps, latents)`, after it, is given
    the latents (for previews: inference/preview.py). `pad_to`: the batch is drawn at this size, the
    last job repeated (a compiled UNet's shapes never change: inference/compiled.py), and the
    repeats dropped; each job's picture is what it would be alone."""
    # 1. Check inputs
    if not batch:
        raise InvalidGenerationInput("batch", "must hold at least one job")
    for params in batch:
        check_inputs(params)
    if len({batch_key(p) for p in batch}) != 1:
        raise InvalidGenerationInput(
            "batch", "must share steps, guidance, refine and whether the negative prompt is empty"
        )
    first = batch[0]
    width, height = draw_size(family, spec)
    wanted = len(batch)
    if pad_to is not None and pad_to > wanted:
        batch = [*batch, *[batch[-1]] * (pad_to - wanted)]

    # 2. Seed each job. The starting noise is drawn on the CPU, so it is the same whatever the device.
    generators = [torch.Generator("cpu").manual_seed(p.seed) for p in batch]

    refining = first.refine > 0
    refined_steps = refine_steps(first.steps, first.refine) if refining else 0
    # a hi-res pass runs about refine x steps more: counted on from the first pass's steps
    total = first.steps + (int(refined_steps * first.refine) or 1 if refining else 0)

    def step_ended(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        return ended(index + 1, tensors)

    def refine_step_ended(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        return ended(min(first.steps + index + 1, total), tensors)

    def ended(step: int, tensors: dict[str, Any]) -> dict[str, Any]:
        if on_step is not None:
            on_step(step, total)
        if on_latents is not None:
            on_latents(step, total, tensors["latents"])
        return tensors

    common = dict(
        prompt=[p.prompt for p in batch],
        negative_prompt=[p.negative_prompt for p in batch] if first.negative_prompt else None,
        guidance_scale=first.guidance,
        output_type="np",
        callback_on_step_end_tensor_inputs=["latents"] if on_latents is not None else [],
    )

    # 3. Draw at the family's bucket. An empty negative prompt is None, so that SDXL uses zeros
    # for it (force_zeros_for_empty_prompt), as it was trained.
    with torch.inference_mode():
        images = pipeline(
            width=width,
            height=height,
            num_inference_steps=first.steps,
            generator=generators,
            callback_on_step_end=step_ended,
            **common,
        ).images
        # 4. The hi-res pass: each drawing upscaled (lanczos) to the refine size, then img2img there, its
        # noise seeded from the job's seed again, so a regenerate draws the same pixels
        if refining:
            size = refine_size(family, spec)
            upscaled = [_to_array(resize_to(_to_image(image), *size)) for image in images]
            images = _img2img(pipeline)(
                image=np.stack(upscaled),
                strength=first.refine,
                num_inference_steps=refined_steps,
                generator=[torch.Generator("cpu").manual_seed(p.seed) for p in batch],
                callback_on_step_end=refine_step_ended,
                **common,
            ).images

    masters = []
    for image in images[:wanted]:
        # 5. Resize to the master size (the bucket's ratio is near, not equal, to the family's)
        # in memory, so that it no longer refers to the numpy array
        masters.append(resize_to(_to_image(image), family.width, family.height).copy_memory())
    return masters


def _to_image(image: np.ndarray) -> pyvips.Image:
    """A pipeline's float image as an 8-bit sRGB one, rounding as diffusers' own numpy_to_pil does."""
    pixels = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    return pyvips.Image.new_from_array(np.ascontiguousarray(pixels)).copy(interpretation="srgb")


def _to_array(image: pyvips.Image) -> np.ndarray:
    """An 8-bit image as the float array (0..1, height x width x 3) an img2img call takes."""
    pixels = np.ndarray(buffer=image.write_to_memory(), dtype=np.uint8, shape=(image.height, image.width, 3))
    return pixels / 255.0


_IMG2IMG: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _img2img(pipeline: Any) -> Any:
    """SDXL img2img on the text-to-image pipeline's own components (no second copy of the weights),
    made once per pipeline."""
    if pipeline not in _IMG2IMG:
        from diffusers import StableDiffusionXLImg2ImgPipeline

        refiner = StableDiffusionXLImg2ImgPipeline.from_pipe(pipeline)
        refiner.set_progress_bar_config(disable=True)
        _IMG2IMG[pipeline] = refiner
    return _IMG2IMG[pipeline]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
