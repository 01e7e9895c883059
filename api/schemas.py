"""Request bodies, as the original product takes them (camelCase), validated at the edge. What a create
is checked against beyond its own fields (the deployment's families, the names the API's routes keep) is
given by the app as the validation context (`Checked`)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from streams import limits

MAX_VARIANTS = 16


class Checked(TypedDict):
    families: Collection[str]  # the family table's names
    reserved: Collection[str]  # path segments of the API itself (api/routes.py)


def _checked(info: ValidationInfo) -> Checked:
    if not isinstance(info.context, dict):
        raise TypeError("validate a CreateVariationBody with context=Checked(families=…, reserved=…)")
    return info.context  # type: ignore[return-value]


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class GenerationBody(Body):
    prompt: limits.Prompt
    negative_prompt: limits.NegativePrompt = ""
    seed: limits.Seed | None = Field(default=None, description="random when absent")
    model: str | None = Field(default=None, max_length=limits.MAX_MODEL_NAME)
    inference_steps: limits.Steps | None = None
    guidance_scale: limits.Guidance | None = None
    refine: limits.Refine | None = Field(
        default=None,
        description="a hi-res pass: the master drawn at the model's bucket, upscaled to its size and refined "
        "by img2img at this strength (about 0.3; 0: none); default: the model's",
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class FocalPointBody(Body):
    x: float = Field(ge=0.0, le=1.0, description="0 is the left edge, 1 the right")
    y: float = Field(ge=0.0, le=1.0, description="0 is the top edge, 1 the bottom")


class CreateVariationBody(Body):
    name: limits.Name = Field(description="URL-safe: lowercase letters, digits and '-'")
    category: limits.Category = ""
    families: list[str] = Field(min_length=1, max_length=32)
    generation: GenerationBody
    is_dx_job: bool = False
    focal_point: FocalPointBody | None = Field(default=None, description="kept by every crop; overrides detection")
    focal_points: dict[str, FocalPointBody] = Field(default={}, description="per family, over focalPoint")
    variants: int = Field(
        default=1,
        ge=1,
        le=MAX_VARIANTS,
        description="above 1: an A/B test's variant set of that many variations named {name}-v1…, seeds seed…",
    )

    @field_validator("variants")
    @classmethod
    def _set_fits(cls, value: int, info: ValidationInfo) -> int:
        name, generation = info.data.get("name", ""), info.data.get("generation")
        if value > 1 and len(f"{name}-v{value}") > limits.MAX_NAME:
            raise ValueError(f"name is too long for {value} variants (named {{name}}-v1…)")
        if generation is not None and generation.seed is not None and generation.seed + value - 1 > limits.MAX_SEED:
            raise ValueError(f"generation.seed + variants - 1 must be at most {limits.MAX_SEED}")
        return value

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str, info: ValidationInfo) -> str:
        if value in _checked(info)["reserved"]:
            raise ValueError(f"{value!r} is reserved")
        return value

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: list[str], info: ValidationInfo) -> list[str]:
        known = list(_checked(info)["families"])
        unknown = [f for f in value if f not in known]
        if unknown:
            raise ValueError(f"unknown families {unknown}; known: {list(known)}")
        if len(set(value)) != len(value):
            raise ValueError("families must not repeat")
        return value

    @field_validator("focal_points")
    @classmethod
    def _requested(cls, value: dict[str, FocalPointBody], info: ValidationInfo) -> dict[str, FocalPointBody]:
        if stray := sorted(set(value) - set(info.data.get("families", ()))):
            raise ValueError(f"names families that are not requested: {stray}")
        return value


class ChooseWinnerBody(Body):
    variant: int = Field(ge=1, le=MAX_VARIANTS, description="the winning variant's place in the set, from 1")
    reason: str = Field(
        default="", max_length=limits.MAX_REASON, description="why it won, in free text (e.g. the test's result)"
    )
