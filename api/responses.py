"""Response bodies, as the handlers return them (camelCase), for the OpenAPI document (api/openapi.py).
The handlers build plain dicts (projections/views.py, webhooks/store.py); these models say their
shape, and the fuzz test (tests/e2e/test_fuzz.py) holds every real response to it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

VariationStatus = Literal["generating", "completed", "partial", "failed", "cancelled"]
FamilyStatus = Literal["queued", "generating", "completed", "failed", "cancelled", "abandoned"]


class Shape(BaseModel):
    # extra="forbid": a field a handler adds without saying so here is a schema violation, not drift
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --- variations -------------------------------------------------------------------------------------


class AcceptedLinks(Shape):
    self_: str = Field(alias="self")
    by_name: str
    command: str


class Accepted(Shape):
    """A command taken onto the log: what it is about and where to follow it."""

    id: uuid.UUID
    name: str
    status: Literal["pending", "accepted", "regenerating", "retrying", "cancelling"] = Field(
        description="pending: sent, not yet decided; accepted: the same request made this variation already"
    )
    command_id: uuid.UUID
    links: AcceptedLinks


class SetLinks(Shape):
    self_: str = Field(alias="self")


class SetAccepted(Shape):
    """The commands of a variant set (an A/B test's variations), one per variation."""

    set_: str = Field(alias="set")
    variations: list[Accepted]
    links: SetLinks


class Generation(Shape):
    prompt: str
    negative_prompt: str
    seed: int
    model: str
    inference_steps: int
    guidance_scale: float


class FocalPoint(Shape):
    x: float
    y: float


class VariantSetPlace(Shape):
    name: str
    variant: int = Field(description="its place in the set, from 1")


class Variation(Shape):
    id: uuid.UUID
    name: str
    category: str
    status: VariationStatus
    round: int
    is_dx_job: bool
    generation: Generation
    focal_point: FocalPoint | None
    focal_points: dict[str, FocalPoint]
    variant_set: VariantSetPlace | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class Box(Shape):
    left: int
    top: int
    width: int
    height: int


class Subject(Box):
    found_by: str | None


class DrawnWith(Shape):
    model: str | None
    seed: int | None
    scheduler: str | None
    weights: str | None = Field(description="fingerprint of the weights on disk")
    refine: float | None = Field(description="the hi-res pass's img2img strength (0: none)")


class Derivative(Shape):
    name: str
    url: str
    width: int
    height: int
    bytes: int
    content_type: str
    crop_box: Box | None
    crop_reason: str | None
    subject_clear_of_safe_zones: bool | None
    scale: float | None = Field(description="derivative pixels per master pixel")
    upscaled: bool


class Family(Shape):
    name: str
    status: FamilyStatus
    round: int
    attempts: int
    error: str | None
    error_kind: str | None
    public_url: str | None
    width: int | None
    height: int | None
    bytes: int | None
    duration_seconds: float | None
    drawn_with: DrawnWith
    warnings: list[str]
    subject: Subject | None
    started_at: datetime | None
    completed_at: datetime | None
    derivatives: list[Derivative]


class VariationDetail(Variation):
    families: list[Family]


class VariationPage(Shape):
    items: list[Variation]
    total: int
    limit: int
    offset: int


class SetChoice(Shape):
    """One choice of a set's winner; the last one stands."""

    choice: int = Field(description="counts the set's choices from 1")
    variant: int
    variation_id: uuid.UUID
    name: str = Field(description="the winning variation's name")
    round: int = Field(description="the round it had drawn when chosen")
    reason: str
    chosen_at: datetime
    command_id: uuid.UUID


class SetWinner(SetChoice):
    set_urls: dict[str, str] = Field(
        description="per family (its master) and derivative: the set's stable URL, which serves whichever "
        "variant won last"
    )


class VariantSet(Shape):
    name: str
    size: int
    statuses: dict[str, int] = Field(description="how many of its variations are in each status")
    variations: list[VariationDetail]
    winner: SetWinner | None = Field(description="the last choice (none yet: null)")
    choices: list[SetChoice] = Field(description="every choice of a winner, the first first")


class WinnerAccepted(Shape):
    """A choice of a winner, on the log: the set's page shows it once decided."""

    set_: str = Field(alias="set")
    variant: int
    variation_id: uuid.UUID
    name: str
    status: Literal["choosing"]
    command_id: uuid.UUID
    links: SetLinks


class PendingCommand(Shape):
    """Not decided yet, or no such command: the read model cannot tell these apart."""

    command_id: uuid.UUID
    status: Literal["pending"]


class DecidedCommand(Shape):
    command_id: uuid.UUID
    status: Literal["accepted", "rejected"]
    variation_id: uuid.UUID
    name: str
    reason: str | None = Field(description="why it was rejected")


# --- health and models ------------------------------------------------------------------------------


class Health(Shape):
    status: Literal["ok"]


class FamilyHealth(Shape):
    served: bool
    live_workers: int
    seconds_since_seen: float | None
    last_completed_at: datetime | None
    completed: int


class Worker(Shape):
    worker: str
    families: list[str]
    models_loaded: list[str]
    device: str
    free_memory_bytes: int | None
    device_memory_total_bytes: int | None
    device_memory_allocated_bytes: int | None
    last_seen_at: datetime
    seconds_since_seen: float
    live: bool


class MlHealth(Shape):
    status: Literal["ok", "degraded"] = Field(description="degraded: some family has no live worker")
    families: dict[str, FamilyHealth]
    workers: list[Worker]


class Model(Shape):
    name: str
    description: str
    source: str
    default_steps: int
    default_guidance: float
    default_refine: float = Field(description="the hi-res pass's strength when a variation names none (0: none)")
    memory_gb: float
    loaded: bool
    available: bool = Field(description="loadable without a download")
    loaded_by: list[str]


class ModelList(Shape):
    models: list[Model]


# --- webhooks ---------------------------------------------------------------------------------------


class WebhookLinks(Shape):
    self_: str = Field(alias="self")
    deliveries: str


class Webhook(Shape):
    id: uuid.UUID
    url: str
    events: list[str] = Field(description="the event types it receives; empty: all")
    description: str
    active: bool
    inactive_reason: str | None
    created_at: datetime
    links: WebhookLinks


class NewWebhook(Webhook):
    """A subscription made without a secret: the one made for it, shown this once."""

    secret: str


class WebhookList(Shape):
    items: list[Webhook]


class Attempt(Shape):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float


class Delivery(Shape):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_duration_ms: float | None
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    attempt_log: list[Attempt]


class DeliveryPage(Shape):
    items: list[Delivery]
    limit: int


class SessionState(Shape):
    """Whether keys are required, and who this browser is signed in as."""

    required: bool = Field(description="API keys are configured: the gallery needs a sign-in")
    signed_in: bool
    name: str | None = Field(description="the key's name")
    scope: Literal["read", "submit", "admin"] | None = Field(description="what the session may do (admin: no keys)")
    expires_at: datetime | None
    csrf_token: str | None = Field(description="send it as X-CSRF-Token with every call that changes anything")
