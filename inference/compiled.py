"""Drawing with a compiled UNet: torch.compile makes a graph per input shape, and compiling one takes
seconds to minutes. So a worker compiles every shape it serves before it takes a job (its heartbeat
says `warming`): each bucket of its families (and the hi-res size, when its model refines) at each
batch size it may draw, and then pads a shorter take up to the next of those sizes, so that no job
ever waits for a compilation."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from inference.generation import GenerationParams, draw_size, generate_batch, refine_size
from inference.models import ModelSpec
from streams.families import Family

WARM = GenerationParams("warm-up", "", seed=0, steps=1, guidance=5.0)


def batch_sizes(limit: int) -> tuple[int, ...]:
    """The batch sizes a worker drawing up to `limit` jobs a call compiles: powers of two, and `limit`."""
    sizes = {1, limit}
    size = 2
    while size < limit:
        sizes.add(size)
        size *= 2
    return tuple(sorted(sizes))


def padded(size: int, sizes: tuple[int, ...]) -> int:
    """The compiled batch size a take of `size` jobs is drawn at."""
    return next((s for s in sizes if s >= size), size)


def is_compiled(pipeline: Any) -> bool:
    return hasattr(getattr(pipeline, "unet", None), "_orig_mod")  # torch.compile's wrapper


def warm(pipeline: Any, spec: ModelSpec, families: Iterable[Family], sizes: tuple[int, ...]) -> tuple[int, float]:
    """Draw one step at each shape the worker serves, so each is compiled now: (shapes, seconds)."""
    began, shapes = time.monotonic(), 0
    seen: set[tuple[tuple[int, int], tuple[int, int] | None]] = set()
    refine = spec.default_refine
    params = dataclasses.replace(WARM, steps=4, refine=refine) if refine else WARM
    for family in families:
        shape = (draw_size(family, spec), refine_size(family, spec) if refine else None)
        if shape in seen:
            continue
        seen.add(shape)
        for size in sizes:
            generate_batch(pipeline, spec, [params] * size, family)
            shapes += 1
    return shapes, time.monotonic() - began
