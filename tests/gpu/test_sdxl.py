"""Full-size SDXL on a GPU (random weights: real SDXL cost, nothing downloaded), through imagegen's own
drawing: the same seed twice gives the same pixels, and another seed another picture. Runs only
where CUDA is present (the `gpu` marker)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def test_full_size_sdxl_draws_the_same_pixels_for_the_same_seed() -> None:
    import torch

    from inference import sdxl
    from inference.generation import GenerationParams, generate
    from inference.models import ModelSpec
    from streams.families import load

    pipe = sdxl.random_pipeline(device="cuda", dtype=torch.float16)
    spec = ModelSpec("sdxl-random", "random", "full-size SDXL, random weights", default_steps=4, default_guidance=5.0)
    square = load().get("square")

    def draw(seed: int) -> np.ndarray:
        params = GenerationParams(prompt="a lighthouse at dawn", negative_prompt="", seed=seed, steps=4, guidance=5.0)
        return np.asarray(generate(pipe, spec, params, square).numpy())

    first, again, other = draw(7), draw(7), draw(8)
    assert first.shape == (square.height, square.width, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
