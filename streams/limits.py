"""The limits of what may be asked for, in one place: the messages, the API's bodies and the drawing
itself check the same bounds. Pure data, at the bottom with the family table."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_SEED = 2**32 - 1  # a uint32, as SDXL front ends take it (torch would take up to 2**64 - 1)
MAX_STEPS = 150
MAX_GUIDANCE = 30.0
MAX_PROMPT = 2000
MAX_MODEL_NAME = 64
MAX_CATEGORY = 100
MAX_REFINE = 0.8  # the hi-res pass's img2img strength: beyond, it redraws rather than refines
MAX_NAME = 120
MAX_REASON = 500  # why a variant won: free text, e.g. the test's result
# a variation's (and a set's) name: URL-safe, a path segment of its images' URLs
NAME_PATTERN = rf"^[a-z0-9](?:[a-z0-9-]{{0,{MAX_NAME - 2}}}[a-z0-9])?$"

Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT)]
NegativePrompt = Annotated[str, Field(max_length=MAX_PROMPT)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)]
Guidance = Annotated[float, Field(ge=0.0, le=MAX_GUIDANCE)]
Category = Annotated[str, Field(max_length=MAX_CATEGORY)]
Refine = Annotated[float, Field(ge=0.0, le=MAX_REFINE)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
