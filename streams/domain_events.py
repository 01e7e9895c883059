"""The public contract other services build on: one domain event per step a user cares about, as the
original product names them (camelCase on the wire, `imagegen.domain-events`). Versioned like every
message; `streams/domain.py` decides which events of the log are announced."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class DomainEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    id: uuid.UUID
    version: Literal[1] = 1  # a new shape is a new version (see upcast)
    time: datetime
    correlation_id: uuid.UUID
    variation_id: uuid.UUID

    @property
    def key(self) -> bytes:
        return str(self.variation_id).encode()


class ImageVariationStarted(DomainEvent):
    type: Literal["IMAGE_VARIATION_STARTED"] = "IMAGE_VARIATION_STARTED"
    family_count: int


class ImageRef(BaseModel):
    """Where an image is and what it is: what a page's meta tags need."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    url: str
    width: int | None = None  # None only in events upcast from version 1, which did not say
    height: int | None = None
    content_type: str | None = None


class ImageFamilyCompleted(DomainEvent):
    """Version 2 adds `images`: the master (under the family's name) and every derivative, with their
    sizes and content types."""

    type: Literal["IMAGE_FAMILY_COMPLETED"] = "IMAGE_FAMILY_COMPLETED"
    version: Literal[2] = 2  # type: ignore[assignment]
    family_name: str
    public_url: str
    derivative_urls: dict[str, str]
    images: dict[str, ImageRef]


class ImageVariationCompleted(DomainEvent):
    type: Literal["IMAGE_VARIATION_COMPLETED"] = "IMAGE_VARIATION_COMPLETED"
    public_urls: dict[str, str]


class ImageVariationPartial(DomainEvent):
    type: Literal["IMAGE_VARIATION_PARTIAL"] = "IMAGE_VARIATION_PARTIAL"
    partial_urls: dict[str, str]
    errors: dict[str, str]


class ImageVariationFailed(DomainEvent):
    type: Literal["IMAGE_VARIATION_FAILED"] = "IMAGE_VARIATION_FAILED"
    error_message: str


class ImageVariationCancelled(DomainEvent):
    """The round was cancelled; `public_urls` are the masters of the families drawn before."""

    type: Literal["IMAGE_VARIATION_CANCELLED"] = "IMAGE_VARIATION_CANCELLED"
    public_urls: dict[str, str]


class ImageSetWinnerChosen(DomainEvent):
    """A variant won its set (an A/B test): `images` are the winner's (every master under its family's
    name, every derivative), `setUrls` the set's stable URLs of the same names, which serve whichever
    variant won last, so a page's meta tags can point at them once. `variationId` is the winner's;
    the key is the set's id, so a set's choices arrive in order. `choice` counts them from 1."""

    type: Literal["IMAGE_SET_WINNER_CHOSEN"] = "IMAGE_SET_WINNER_CHOSEN"
    set_id: uuid.UUID
    set_name: str
    variant: int
    variation_name: str
    round: int
    choice: int
    reason: str
    images: dict[str, ImageRef]
    set_urls: dict[str, str]

    @property
    def key(self) -> bytes:
        return str(self.set_id).encode()
