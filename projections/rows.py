"""The read model's rows, and what each event does to them: pure, no SQL here.

The projector loads the rows a batch of events touches, folds the events over them in log order
with `evolve`, and writes each changed row once (projections/readmodel.py). Folding in Python, where
the events already are, turns a replay's many updates of a row (requested, started, completed,
concluded) into one write of its final state.

Each rule is the read model's contract, as one-at-a-time SQL would apply it (bench/naive_projector.py
checks): the first start and the first outcome of a family's round win; a regeneration or a
conclusion applies only to the round it names.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from streams import messages as m


@dataclass(slots=True)
class Variation:
    id: uuid.UUID
    command_id: uuid.UUID
    name: str
    category: str
    status: str
    prompt: str
    negative_prompt: str
    seed: int
    model: str
    steps: int
    guidance: float
    priority: str
    families: list[str]
    round: int
    error: str | None
    requested_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    focal_point: dict[str, float] | None
    focal_points: dict[str, dict[str, float]]
    variant_set: str | None = None
    variant: int | None = None


@dataclass(slots=True)
class Family:
    variation_id: uuid.UUID
    family: str
    status: str
    round: int
    attempts: int = 0
    worker: str | None = None
    error: str | None = None
    error_kind: str | None = None
    retryable: bool | None = None
    master_key: str | None = None
    master_url: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    model: str | None = None
    seed: int | None = None
    duration_s: float | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    scheduler: str | None = None
    weights: str | None = None
    refine: float | None = None
    warnings: list[str] = field(default_factory=list)
    subject_left: int | None = None
    subject_top: int | None = None
    subject_width: int | None = None
    subject_height: int | None = None
    subject_reason: str | None = None


def columns(row: type) -> tuple[str, ...]:
    """The table columns a row type holds, in order."""
    return tuple(f.name for f in fields(row))


VARIATION_COLUMNS, FAMILY_COLUMNS = columns(Variation), columns(Family)
variation_values: Callable[[Variation], tuple[Any, ...]] = attrgetter(*VARIATION_COLUMNS)
family_values: Callable[[Family], tuple[Any, ...]] = attrgetter(*FAMILY_COLUMNS)


DERIVATIVE_COLUMNS = (
    "variation_id",
    "family",
    "name",
    "storage_key",
    "public_url",
    "width",
    "height",
    "bytes",
    "content_type",
    "crop_left",
    "crop_top",
    "crop_width",
    "crop_height",
    "crop_reason",
    "crop_clear",
    "scale",
)
REJECTION_COLUMNS = ("event_id", "command_id", "variation_id", "name", "reason", "occurred_at")
FamilyKey = tuple[uuid.UUID, str]


@dataclass
class Fold:
    """The rows a batch touches: those loaded from the read model, then changed by its events."""

    variations: dict[uuid.UUID, Variation] = field(default_factory=dict)
    families: dict[FamilyKey, Family] = field(default_factory=dict)
    # the families of each variation (loaded or made), so a regeneration finds them all
    of_variation: dict[uuid.UUID, list[Family]] = field(default_factory=dict)
    # what to write: rows made here (insert), rows loaded and changed (update); a variation's key is
    # its id, a family's (variation id, family)
    made: set[uuid.UUID | FamilyKey] = field(default_factory=set)
    changed: set[uuid.UUID | FamilyKey] = field(default_factory=set)
    # a family whose derivatives its winning outcome replaces: the new set
    derivatives: dict[FamilyKey, list[tuple[Any, ...]]] = field(default_factory=dict)
    rejections: list[tuple[Any, ...]] = field(default_factory=list)

    def load(self, variations: list[Variation], families: list[Family]) -> None:
        for v in variations:
            self.variations[v.id] = v
        for f in families:
            self._add_family(f)

    def _add_family(self, f: Family) -> None:
        self.families[(f.variation_id, f.family)] = f
        self.of_variation.setdefault(f.variation_id, []).append(f)

    def _touch(self, key: uuid.UUID | FamilyKey) -> None:
        if key not in self.made:
            self.changed.add(key)


def _requested(fold: Fold, e: m.VariationRequested) -> None:
    if e.variation_id not in fold.variations:
        g = e.generation
        fold.variations[e.variation_id] = Variation(
            id=e.variation_id,
            command_id=e.command_id,
            name=e.name,
            category=e.category,
            status="generating",
            prompt=g.prompt,
            negative_prompt=g.negative_prompt,
            seed=g.seed,
            model=g.model,
            steps=g.steps,
            guidance=g.guidance,
            priority=e.priority,
            families=list(e.families),
            round=e.round,
            error=None,
            requested_at=e.occurred_at,
            updated_at=e.occurred_at,
            completed_at=None,
            focal_point=e.focal_point.model_dump() if e.focal_point else None,
            focal_points={f: p.model_dump() for f, p in e.focal_points.items()},
            variant_set=e.variant_set,
            variant=e.variant,
        )
        fold.made.add(e.variation_id)
    for name in e.families:
        key = (e.variation_id, name)
        if key not in fold.families:
            fold._add_family(Family(variation_id=e.variation_id, family=name, status="queued", round=e.round))
            fold.made.add(key)


def _rejected(fold: Fold, e: m.VariationRejected) -> None:
    fold.rejections.append((e.event_id, e.command_id, e.variation_id, e.name, e.reason, e.occurred_at))


def _regenerated(fold: Fold, e: m.RegenerationRequested) -> None:
    v = fold.variations.get(e.variation_id)
    if v is not None and v.round < e.round:
        v.round, v.status, v.error, v.completed_at, v.updated_at = e.round, "generating", None, None, e.occurred_at
        fold._touch(v.id)
    for f in fold.of_variation.get(e.variation_id, ()):
        if f.round < e.round:
            f.round, f.status, f.error, f.error_kind, f.retryable = e.round, "queued", None, None, None
            f.started_at = f.completed_at = None
            fold._touch((f.variation_id, f.family))


def _retried(fold: Fold, e: m.FamilyRetryRequested) -> None:
    f = fold.families.get((e.variation_id, e.family))
    if f is None or f.round != e.round or f.status != "failed":
        return
    f.status, f.error, f.error_kind, f.retryable, f.started_at, f.completed_at = "queued", None, None, None, None, None
    fold._touch((f.variation_id, f.family))
    v = fold.variations.get(e.variation_id)
    if v is not None and v.round == e.round:
        v.status, v.error, v.completed_at, v.updated_at = "generating", None, None, e.occurred_at
        fold._touch(v.id)


def _family(
    fold: Fold, e: m.FamilyStarted | m.FamilyCompleted | m.FamilyFailed | m.FamilyCancelled, statuses: tuple[str, ...]
) -> Family | None:
    """The family row `e` applies to, if it is at `e`'s round in one of `statuses`; marked changed."""
    f = fold.families.get((e.variation_id, e.family))
    if f is None or f.round != e.round or f.status not in statuses:
        return None
    fold._touch((f.variation_id, f.family))
    return f


def _started(fold: Fold, e: m.FamilyStarted) -> None:
    if f := _family(fold, e, ("queued",)):
        f.status, f.attempts, f.worker, f.started_at = "generating", f.attempts + 1, e.worker, e.occurred_at


def _completed(fold: Fold, e: m.FamilyCompleted) -> None:
    if not (f := _family(fold, e, ("queued", "generating"))):
        return  # an outcome of an earlier round, or not the first of this one: the first wins
    master = e.master
    f.status, f.error, f.error_kind, f.retryable = "completed", None, None, None
    f.master_key, f.master_url, f.width, f.height, f.bytes = (
        master.key,
        master.url,
        master.width,
        master.height,
        master.bytes,
    )
    f.model, f.seed, f.duration_s, f.completed_at = e.model, e.seed, e.duration_s, e.occurred_at
    f.scheduler, f.weights, f.warnings = e.scheduler or None, e.weights or None, list(e.warnings)
    f.refine = e.generation.refine if e.generation else None
    f.subject_left, f.subject_top, f.subject_width, f.subject_height = e.subject or (None, None, None, None)
    f.subject_reason = e.subject_reason
    fold.derivatives[(f.variation_id, f.family)] = [
        (
            e.variation_id,
            e.family,
            d.name,
            d.key,
            d.url,
            d.width,
            d.height,
            d.bytes,
            d.content_type,
            *(d.crop or (None, None, None, None)),
            d.crop_reason,
            d.crop_clear,
            d.scale,
        )
        for d in e.derivatives
    ]


def _failed(fold: Fold, e: m.FamilyFailed) -> None:
    if f := _family(fold, e, ("queued", "generating")):
        f.status, f.error, f.error_kind, f.retryable, f.completed_at = (
            "failed",
            e.message,
            e.error_kind,
            e.retryable,
            e.occurred_at,
        )


def _cancelled(fold: Fold, e: m.VariationCancelled) -> None:
    v = fold.variations.get(e.variation_id)
    if v is None or v.round != e.round or v.status != "generating":
        return
    v.status, v.error, v.completed_at, v.updated_at = "cancelled", None, e.occurred_at, e.occurred_at
    fold._touch(v.id)
    for f in fold.of_variation.get(e.variation_id, ()):
        if f.round == e.round and f.status in ("queued", "generating"):
            f.error = "cancelled before drawing" if f.status == "queued" else "cancelled while drawing"
            f.status, f.error_kind, f.completed_at = "cancelled", "cancelled", e.occurred_at
            fold._touch((f.variation_id, f.family))


def _family_cancelled(fold: Fold, e: m.FamilyCancelled) -> None:
    """Where the worker let go of the job: the family is cancelled (whichever of this and the
    variation's cancellation comes first)."""
    if f := _family(fold, e, ("queued", "generating", "cancelled")):
        f.status, f.error_kind = "cancelled", "cancelled"
        f.completed_at = f.completed_at or e.occurred_at
        if e.at_step == 0:
            f.error = "cancelled before drawing"
        elif e.at_step < e.steps:
            f.error = f"stopped at step {e.at_step} of {e.steps}"
        else:
            f.error = "cancelled after drawing; not stored"


def _abandoned(fold: Fold, e: m.FamilyAbandoned) -> None:
    f = fold.families.get((e.variation_id, e.family))
    if f is not None and f.round == e.round and f.status == "failed":
        f.status = "abandoned"  # its error stays
        fold._touch((f.variation_id, f.family))


def _concluded(status: str) -> Callable[[Fold, Any], None]:
    def conclude(fold: Fold, e: m.VariationCompleted | m.VariationPartial | m.VariationFailed) -> None:
        v = fold.variations.get(e.variation_id)
        if v is None or v.round != e.round:
            return
        if isinstance(e, m.VariationPartial):
            v.error = "; ".join(f"{family}: {message}" for family, message in sorted(e.failed.items()))
        else:
            v.error = getattr(e, "error_message", None) or None
        v.status, v.completed_at, v.updated_at = status, e.occurred_at, e.occurred_at
        fold._touch(v.id)

    return conclude


EVOLVE: dict[type[m.Event], Callable[[Fold, Any], None]] = {
    m.VariationRequested: _requested,
    m.VariationRejected: _rejected,
    m.RegenerationRequested: _regenerated,
    m.FamilyRetryRequested: _retried,
    m.FamilyStarted: _started,
    m.FamilyCompleted: _completed,
    m.FamilyFailed: _failed,
    m.VariationCompleted: _concluded("completed"),
    m.VariationPartial: _concluded("partial"),
    m.VariationFailed: _concluded("failed"),
    m.FamilyCancelled: _family_cancelled,
    m.VariationCancelled: _cancelled,
    m.FamilyAbandoned: _abandoned,
}


def evolve(fold: Fold, event: m.Event) -> None:
    EVOLVE[type(event)](fold, event)
