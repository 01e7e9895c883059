"""Previews of a drawing as it forms: SDXL's latents mapped linearly to RGB (no decoder), a small WebP,
handed out during a real tiny drawing, and what it costs a step."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import pyvips
import torch
from diffusers import StableDiffusionXLPipeline

from inference import preview
from inference.generation import GenerationParams, generate_batch
from inference.models import REGISTRY
from inference.tiny import build_tiny
from streams import families

PARAMS = GenerationParams("a lighthouse on a cliff at dusk", "", seed=7, steps=3, guidance=5.0)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> StableDiffusionXLPipeline:
    tiny = build_tiny(tmp_path_factory.mktemp("models") / "tiny-sdxl-v1")
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny, dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_a_latent_maps_to_colours_by_sdxl_s_factors() -> None:
    zero, one = np.zeros((1, 4, 8, 16), np.float32), np.zeros((1, 4, 8, 16), np.float32)
    one[:, 0] = 1.0  # the first channel carries mostly brightness
    (grey,), (bright,) = preview.pictures(zero), preview.pictures(one)
    assert grey.shape == (8, 16, 3) and grey.dtype == np.uint8
    assert tuple(grey[0, 0]) == (141, 125, 127)  # the bias alone: (1 + bias) / 2 of 255, rounded
    assert (bright[0, 0] > grey[0, 0]).all()


def test_a_preview_is_a_small_webp_of_the_latent_s_shape() -> None:
    latents = torch.randn(2, 4, 96, 168, generator=torch.Generator().manual_seed(1))
    made = preview.previews(latents)
    assert len(made) == 2 and [(w, h) for _, w, h in made] == [(256, 146), (256, 146)]
    data, width, height = made[0]
    image = pyvips.Image.new_from_buffer(data, "")
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP" and (image.width, image.height) == (width, height)
    assert made[0][0] != made[1][0]


def test_a_drawing_hands_out_its_latents_at_every_step_and_a_preview_costs_milliseconds(
    pipeline: StableDiffusionXLPipeline,
) -> None:
    landscape = families.load().get("landscape")
    seen: list[tuple[int, int, tuple[int, ...]]] = []
    costs: list[float] = []

    def on_latents(step: int, steps: int, latents: torch.Tensor) -> None:
        seen.append((step, steps, tuple(latents.shape)))
        began = time.perf_counter()
        preview.previews(latents)
        costs.append(time.perf_counter() - began)

    batch = [PARAMS, dataclasses.replace(PARAMS, seed=8)]
    generate_batch(pipeline, REGISTRY["tiny"], batch, landscape, on_latents=on_latents)
    assert seen == [(1, 3, (2, 4, 12, 21)), (2, 3, (2, 4, 12, 21)), (3, 3, (2, 4, 12, 21))]
    print(f"\n  a preview of a batch of 2 costs {np.median(costs) * 1000:.1f} ms (median) on this CPU")


def test_without_a_previewer_no_latents_are_asked_for(pipeline: StableDiffusionXLPipeline) -> None:
    calls = []
    real = pipeline.__class__.__call__

    def spy(self, *args, **kwargs):
        calls.append(kwargs["callback_on_step_end_tensor_inputs"])
        return real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.__class__, "__call__", spy)
        generate_batch(pipeline, REGISTRY["tiny"], [PARAMS], families.load().get("square"))
    assert calls == [[]]
