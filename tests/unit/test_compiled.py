"""A compiled UNet draws without compiling again: the worker compiles each shape it serves at start
(each family's bucket at each batch size), and a shorter take is padded to a compiled size, so a second
take recompiles nothing (dynamo's own counters say so). On the tiny model, with a backend that counts
compilations instead of inductor's (whose minutes of compiling belong to the GPU proof)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from torch._dynamo.utils import counters

from inference import compiled, speed
from inference.generation import GenerationParams, generate_batch
from inference.models import REGISTRY
from inference.tiny import build_tiny
from streams import families

TINY = REGISTRY["tiny"]
PARAMS = GenerationParams("a lighthouse on a cliff at dusk", "", seed=7, steps=2, guidance=5.0)


def test_the_batch_sizes_compiled_and_the_size_a_take_is_drawn_at() -> None:
    assert compiled.batch_sizes(1) == (1,) and compiled.batch_sizes(4) == (1, 2, 4)
    assert compiled.batch_sizes(6) == (1, 2, 4, 6) and compiled.batch_sizes(16) == (1, 2, 4, 8, 16)
    assert [compiled.padded(n, (1, 2, 4, 6)) for n in (1, 2, 3, 5, 6)] == [1, 2, 4, 6, 6]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-sdxl-v1")


def load(tiny: Path) -> StableDiffusionXLPipeline:
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny, dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_a_warmed_worker_draws_a_second_take_without_compiling_again(tiny: Path) -> None:
    compilations: list[tuple[int, ...]] = []

    def counting(graph: Any, inputs: list[Any]) -> Any:  # dynamo calls its backend once per new graph
        compilations.append(tuple(next(t for t in inputs if isinstance(t, torch.Tensor)).shape))
        return graph.forward

    torch._dynamo.reset()
    pipe = speed.apply(load(tiny), ("compile",), backend=counting)
    assert compiled.is_compiled(pipe)
    table = families.load()
    served = [table.get("square"), table.get("landscape")]
    shapes, seconds = compiled.warm(pipe, TINY, served, (2,))  # two buckets, drawn two at a time
    warmed, graphs = len(compilations), counters["stats"]["unique_graphs"]
    print(f"\n  warm-up: {shapes} shapes, {warmed} compilations in {seconds:.1f} s: {compilations}")
    assert shapes == 2 and warmed >= 2

    # takes of one job, padded to two: the shapes compiled, the same pictures as drawn uncompiled
    plain = load(tiny)
    for family in served:
        for take in ([PARAMS], [PARAMS, GenerationParams("a red kite", "", seed=8, steps=2, guidance=5.0)]):
            drawn = generate_batch(pipe, TINY, take, family, pad_to=compiled.padded(len(take), (2,)))
            assert len(drawn) == len(take)
            alone = generate_batch(plain, TINY, take, family)
            for a, b in zip(drawn, alone, strict=True):
                difference = np.abs(
                    np.frombuffer(a.write_to_memory(), np.uint8).astype(int)
                    - np.frombuffer(b.write_to_memory(), np.uint8)
                )
                assert difference.max() <= 1
    assert len(compilations) == warmed and counters["stats"]["unique_graphs"] == graphs  # nothing compiled again
    print(f"  four takes after it: {len(compilations) - warmed} compilations")
    # the counter's control: a take not padded is a new shape, and compiles
    generate_batch(pipe, TINY, [PARAMS], served[0])
    assert len(compilations) == warmed + 1 and counters["stats"]["unique_graphs"] == graphs + 1
