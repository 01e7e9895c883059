"""Every message imagegen puts on Kafka: commands (imperative), events (past tense) and the public
domain events other services read. Each has a stable wire name (`type`) and a `version`; wire names
never change, because replay from offset 0 depends on them. JSON on the wire."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams import limits

# Fixed forever: ids derived from it are stored in every log and read model.
NAMESPACE = uuid.UUID("6f1e8a4c-3c1b-5d0e-9a57-2b1f0d9c7e42")

Priority = Literal["normal", "dx"]


def variation_id(name: str) -> uuid.UUID:
    """The same name always maps to the same id, so the same partition and the same aggregate."""
    return uuid.uuid5(NAMESPACE, name)


def set_id(name: str) -> uuid.UUID:
    """A variant set's id: every message about the set is keyed by it, so its history is totally ordered."""
    return derive_id("variant-set", name)


def derive_id(*parts: object) -> uuid.UUID:
    """An id derived from what caused a message, so a redelivered cause gives the same id."""
    return uuid.uuid5(NAMESPACE, ":".join(str(p) for p in parts))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1  # a new shape is a new version (see upcast)

    @property
    def message_id(self) -> uuid.UUID:
        raise NotImplementedError

    @property
    def key(self) -> bytes:
        """Every message is keyed by its variation id: one variation's history is totally ordered."""
        return str(getattr(self, "variation_id")).encode()  # noqa: B009


class Generation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: limits.Prompt
    negative_prompt: limits.NegativePrompt = ""
    seed: limits.Seed
    model: str = Field(min_length=1, max_length=limits.MAX_MODEL_NAME)
    steps: limits.Steps
    guidance: limits.Guidance
    # the hi-res pass: drawn at the bucket, upscaled to the master's size and refined by img2img at
    # this strength, seeded from `seed` (0: none; absent in messages from before it, which had none)
    refine: limits.Refine = 0.0


class FocalPoint(BaseModel):
    """Where the subject is, in fractions of the master (0, 0 top left): crops keep it, whatever
    detection finds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x: float = Field(ge=0.0, le=1.0)
    y: float = Field(ge=0.0, le=1.0)


CropReason = Literal["face", "focal-point", "entropy"]


class StoredImage(BaseModel):
    """A master or a derivative as stored: where it is and what it is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    key: str
    url: str
    width: int
    height: int
    bytes: int
    content_type: str = "image/webp"
    crop: tuple[int, int, int, int] | None = None  # (left, top, width, height) in master pixels
    crop_reason: CropReason | None = None  # how the subject the crop keeps was found
    crop_clear: bool | None = None  # the subject is in the crop and out of the platform's safe zones
    scale: float | None = None  # derivative pixels per master pixel: above 1, upscaled (lanczos3)


class ImageLink(BaseModel):
    """Where an image is and its size: what a page's meta tags need of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    width: int
    height: int
    content_type: str = "image/webp"


# --- commands -------------------------------------------------------------------------------------


class Command(Message):
    command_id: uuid.UUID
    variation_id: uuid.UUID

    @property
    def message_id(self) -> uuid.UUID:
        return self.command_id


class CreateVariation(Command):
    """Version 2 may name the variant set the variation belongs to (an A/B test's siblings, one seed
    each); version 1 had no sets (`_no_variant_set`)."""

    type: Literal["CreateVariation"] = "CreateVariation"
    version: Literal[2] = 2  # type: ignore[assignment]
    name: limits.Name
    category: limits.Category = ""
    families: tuple[str, ...] = Field(min_length=1)
    generation: Generation
    priority: Priority = "normal"
    focal_point: FocalPoint | None = None  # for every family, unless focal_points names it
    focal_points: dict[str, FocalPoint] = {}
    variant_set: limits.Name | None = None
    variant: int | None = Field(default=None, ge=1)  # its place in the set, from 1

    @model_validator(mode="after")
    def _consistent(self) -> CreateVariation:
        if self.variation_id != variation_id(self.name):
            raise ValueError(f"variation_id must be uuid5(NAMESPACE, name) = {variation_id(self.name)}")
        if len(set(self.families)) != len(self.families):
            raise ValueError("families must not repeat")
        if stray := sorted(set(self.focal_points) - set(self.families)):
            raise ValueError(f"focal_points names families that are not requested: {stray}")
        if (self.variant_set is None) != (self.variant is None):
            raise ValueError("variant_set and variant go together")
        return self


class RegenerateVariation(Command):
    type: Literal["RegenerateVariation"] = "RegenerateVariation"


class RetryFamily(Command):
    """Draw one failed family of the current round again; the others keep their images."""

    type: Literal["RetryFamily"] = "RetryFamily"
    family: str = Field(min_length=1, max_length=64)


class CancelVariation(Command):
    """Stop drawing the current round: jobs not started are skipped, a job in flight stops at its next
    denoising step; the families already drawn keep their images."""

    type: Literal["CancelVariation"] = "CancelVariation"


class AbandonFamily(Command):
    """Give up on a failed family of a concluded variation (`imagegen queue clear --failed`): it is
    not retried, and the queue no longer lists it. Its error stays in the log and the read model."""

    type: Literal["AbandonFamily"] = "AbandonFamily"
    family: str = Field(min_length=1, max_length=64)


class ChooseWinner(Command):
    """Choose a variant set's winner (an A/B test's result): from then on the set's stable URLs serve
    that variant's images. Keyed by the set, so the set's choices are ordered; a later choice replaces
    an earlier one. Only a completed variant can win; `variation_id` is the chosen variant's, `round`
    the round the sender saw it complete (the choice waits until the set has learnt of that round)."""

    type: Literal["ChooseWinner"] = "ChooseWinner"
    set_id: uuid.UUID
    set_name: limits.Name
    variant: int = Field(ge=1)
    round: int = Field(ge=1)
    reason: str = Field(default="", max_length=limits.MAX_REASON)

    @model_validator(mode="after")
    def _consistent(self) -> ChooseWinner:
        if self.set_id != set_id(self.set_name):
            raise ValueError(f"set_id must be uuid5(NAMESPACE, 'variant-set:' + set_name) = {set_id(self.set_name)}")
        return self

    @property
    def key(self) -> bytes:
        return str(self.set_id).encode()


class GenerateFamily(Message):
    """Work for one family agent: draw one master and cut its derivatives."""

    type: Literal["GenerateFamily"] = "GenerateFamily"
    job_id: uuid.UUID
    variation_id: uuid.UUID
    name: str
    family: str
    round: int
    attempt: int = 1
    generation: Generation
    priority: Priority = "normal"
    # the weights the previous round drew with: the worker warns when it draws with others
    expected_weights: str | None = None
    focal_point: FocalPoint | None = None  # overrides subject detection when given
    # the brand policy's negative prompt, added to the generation's own (streams/brand.py)
    brand_negative_prompt: str = Field(default="", max_length=2000)

    @property
    def message_id(self) -> uuid.UUID:
        return self.job_id


# --- events ---------------------------------------------------------------------------------------


class Event(Message):
    event_id: uuid.UUID
    variation_id: uuid.UUID
    occurred_at: datetime

    @property
    def message_id(self) -> uuid.UUID:
        return self.event_id


class VariationRequested(Event):
    """Version 2 adds the variant set and the variation's place in it (None in version 1)."""

    type: Literal["VariationRequested"] = "VariationRequested"
    version: Literal[2] = 2  # type: ignore[assignment]
    command_id: uuid.UUID
    name: str
    category: str
    families: tuple[str, ...]
    generation: Generation
    priority: Priority
    round: int = 1
    focal_point: FocalPoint | None = None
    focal_points: dict[str, FocalPoint] = {}
    variant_set: str | None = None
    variant: int | None = None


class VariationRejected(Event):
    type: Literal["VariationRejected"] = "VariationRejected"
    command_id: uuid.UUID
    name: str
    reason: str


class RegenerationRequested(Event):
    type: Literal["RegenerationRequested"] = "RegenerationRequested"
    command_id: uuid.UUID
    round: int


class FamilyRetryRequested(Event):
    type: Literal["FamilyRetryRequested"] = "FamilyRetryRequested"
    command_id: uuid.UUID
    family: str
    round: int
    attempt: int


class FamilyStarted(Event):
    type: Literal["FamilyStarted"] = "FamilyStarted"
    job_id: uuid.UUID
    family: str
    round: int
    attempt: int
    worker: str


class FamilyCompleted(Event):
    """Version 2 records how each derivative was framed (crop_reason, crop_clear, scale) and the
    master's subject; version 1 events are upcast on reading (`_family_completed_v1`)."""

    type: Literal["FamilyCompleted"] = "FamilyCompleted"
    version: Literal[2] = 2  # type: ignore[assignment]
    job_id: uuid.UUID
    family: str
    round: int
    attempt: int
    master: StoredImage
    derivatives: tuple[StoredImage, ...]
    model: str
    seed: int
    duration_s: float
    # everything needed to draw the same pixels again (with the model's weights and the device)
    generation: Generation | None = None
    scheduler: str = ""
    weights: str = ""  # fingerprint of the weights on disk (inference/fingerprint.py)
    warnings: tuple[str, ...] = ()
    # what the derivatives' crops keep, in master pixels (left, top, width, height), and how it was found
    subject: tuple[int, int, int, int] | None = None
    subject_reason: CropReason | None = None


class FamilyFailed(Event):
    type: Literal["FamilyFailed"] = "FamilyFailed"
    job_id: uuid.UUID
    family: str
    round: int
    attempt: int
    error_kind: str
    message: str
    retryable: bool


class FamilyCancelled(Event):
    """A worker let go of a job of a cancelled round: skipped before drawing (`at_step` 0), stopped at
    a denoising step, or drawn and not stored (`at_step` == `steps`)."""

    type: Literal["FamilyCancelled"] = "FamilyCancelled"
    job_id: uuid.UUID
    family: str
    round: int
    attempt: int
    at_step: int
    steps: int


class VariationCompleted(Event):
    type: Literal["VariationCompleted"] = "VariationCompleted"
    round: int


class VariationPartial(Event):
    type: Literal["VariationPartial"] = "VariationPartial"
    round: int
    failed: dict[str, str]  # family -> error message


class VariationFailed(Event):
    type: Literal["VariationFailed"] = "VariationFailed"
    round: int
    error_message: str


class FamilyAbandoned(Event):
    type: Literal["FamilyAbandoned"] = "FamilyAbandoned"
    command_id: uuid.UUID
    family: str
    round: int


class VariationCancelled(Event):
    """The round was cancelled; `families` are those it had not drawn yet. Also sent to
    imagegen.control, which every worker reads whole, so that workers let go of its jobs."""

    type: Literal["VariationCancelled"] = "VariationCancelled"
    command_id: uuid.UUID
    round: int
    families: tuple[str, ...]


class SetEvent(Event):
    """An event of a variant set's history, keyed by the set's id; `variation_id` is the variant's."""

    set_id: uuid.UUID
    set_name: str
    variant: int
    name: str  # the variant's variation
    round: int

    @property
    def key(self) -> bytes:
        return str(self.set_id).encode()


class VariantConcluded(SetEvent):
    """A variation of a set concluded a round (completed, partial, failed or cancelled): the set learns
    which of its variants may win, and with which images (every master, under its family's name, and
    every derivative)."""

    type: Literal["VariantConcluded"] = "VariantConcluded"
    status: Literal["completed", "partial", "failed", "cancelled"]
    images: dict[str, ImageLink] = {}


class VariantChosen(SetEvent):
    """A variant won its set (`choice` counts the set's choices from 1; the last one stands)."""

    type: Literal["VariantChosen"] = "VariantChosen"
    command_id: uuid.UUID
    choice: int
    reason: str
    images: dict[str, ImageLink]


FamilyOutcome = FamilyCompleted | FamilyFailed
