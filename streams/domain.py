"""The variation aggregate, pure: `decide` turns a command (or a family outcome) into new messages,
`evolve` folds an event into the state. No Kafka, torch, SQL or HTTP here."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from streams import domain_events
from streams import messages as m
from streams.brand import BrandPolicy

Status = Literal["generating", "completed", "partial", "failed", "cancelled"]
SEEN_LIMIT = 256  # ids of handled commands and outcomes kept to drop redeliveries


class Outcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["completed", "failed", "abandoned"]  # abandoned: failed, and given up on
    master_url: str | None = None
    derivative_urls: dict[str, str] = {}
    error: str | None = None
    weights: str | None = None
    images: dict[str, m.ImageLink] = {}  # the master (under the family's name) and each derivative


class Variation(BaseModel):
    model_config = ConfigDict(frozen=True)

    variation_id: uuid.UUID
    name: str
    category: str
    families: tuple[str, ...]
    generation: m.Generation
    priority: m.Priority
    focal_point: m.FocalPoint | None = None
    focal_points: dict[str, m.FocalPoint] = {}
    status: Status = "generating"
    round: int = 1
    outcomes: dict[str, Outcome] = {}
    attempts: dict[str, int] = {}  # of the current round, when a family was retried (else 1)
    retries: int = 0  # in the current round: each retry concludes the variation anew
    variant_set: str | None = None  # the set it is a variant of, and its place there
    variant: int | None = None
    seen: tuple[str, ...] = ()


State = Variation | None


def _work(
    state: Variation, round_: int, now: datetime, families: tuple[str, ...] | None = None, attempt: int = 1
) -> list[m.GenerateFamily]:
    return [
        m.GenerateFamily(
            job_id=m.derive_id(state.variation_id, round_, family, attempt),
            variation_id=state.variation_id,
            name=state.name,
            family=family,
            round=round_,
            attempt=attempt,
            generation=state.generation,
            priority=state.priority,
            expected_weights=previous.weights if (previous := state.outcomes.get(family)) else None,
            focal_point=state.focal_points.get(family, state.focal_point),
        )
        for family in families or state.families
    ]


def decide(state: State, message: m.Message, now: datetime) -> list[m.Message]:
    """What happens next. For commands `state` is before the command; for a family outcome it is
    the state with that outcome already folded in."""
    match message:
        case m.CreateVariation() as cmd:
            if state is not None:
                return [_rejected(cmd, now, f"name {cmd.name!r} is already taken")]
            requested = m.VariationRequested(
                event_id=m.derive_id(cmd.command_id, "requested"),
                variation_id=cmd.variation_id,
                occurred_at=now,
                command_id=cmd.command_id,
                name=cmd.name,
                category=cmd.category,
                families=cmd.families,
                generation=cmd.generation,
                priority=cmd.priority,
                focal_point=cmd.focal_point,
                focal_points=cmd.focal_points,
                variant_set=cmd.variant_set,
                variant=cmd.variant,
            )
            return [requested, *_work(evolve(None, requested), 1, now)]  # type: ignore[arg-type]
        case m.RegenerateVariation() as cmd:
            if state is None:
                return []  # nothing to regenerate; the API answers 404 before sending
            round_ = state.round + 1
            return [
                m.RegenerationRequested(
                    event_id=m.derive_id(cmd.command_id, "regenerate"),
                    variation_id=cmd.variation_id,
                    occurred_at=now,
                    command_id=cmd.command_id,
                    round=round_,
                ),
                *_work(state, round_, now),
            ]
        case m.RetryFamily() as cmd:
            if state is None or not _failed_in(state, cmd.family):
                return []  # the API answers 404 or 409 before sending
            attempt = state.attempts.get(cmd.family, 1) + 1
            return [
                m.FamilyRetryRequested(
                    event_id=m.derive_id(cmd.command_id, "retry"),
                    variation_id=cmd.variation_id,
                    occurred_at=now,
                    command_id=cmd.command_id,
                    family=cmd.family,
                    round=state.round,
                    attempt=attempt,
                ),
                *_work(state, state.round, now, families=(cmd.family,), attempt=attempt),
            ]
        case m.CancelVariation() as cmd:
            if state is None or state.status != "generating":
                return []  # the API answers 404 or 409 before sending
            cancelled = m.VariationCancelled(
                event_id=m.derive_id(cmd.command_id, "cancel"),
                variation_id=cmd.variation_id,
                occurred_at=now,
                command_id=cmd.command_id,
                round=state.round,
                families=tuple(f for f in state.families if f not in state.outcomes),
            )
            return [cancelled, *_told_to_set(state, cancelled)]
        case m.AbandonFamily() as cmd:
            if state is None or not _failed_in(state, cmd.family):
                return []  # the queue lists only failed families of concluded variations
            return [
                m.FamilyAbandoned(
                    event_id=m.derive_id(cmd.command_id, "abandon"),
                    variation_id=cmd.variation_id,
                    occurred_at=now,
                    command_id=cmd.command_id,
                    family=cmd.family,
                    round=state.round,
                )
            ]
        case m.FamilyCompleted() | m.FamilyFailed() as outcome:
            if state is None or outcome.round != state.round or state.status != "generating":
                return []
            if any(f not in state.outcomes for f in state.families):
                return []
            conclusion = _conclusion(state, now)
            return [conclusion, *_told_to_set(state, conclusion)]
    return []


def _failed_in(state: Variation, family: str) -> bool:
    """`family` failed in a concluded round (so it may be retried or abandoned)."""
    outcome = state.outcomes.get(family)
    return state.status in ("partial", "failed") and outcome is not None and outcome.status == "failed"


def _rejected(cmd: m.CreateVariation, now: datetime, reason: str) -> m.VariationRejected:
    return m.VariationRejected(
        event_id=m.derive_id(cmd.command_id, "rejected"),
        variation_id=cmd.variation_id,
        occurred_at=now,
        command_id=cmd.command_id,
        name=cmd.name,
        reason=reason,
    )


def _conclusion(state: Variation, now: datetime) -> m.Event:
    event_id = m.derive_id(state.variation_id, state.round, "concluded", *([state.retries] if state.retries else []))
    failed = {f: o.error or "failed" for f, o in state.outcomes.items() if o.status != "completed"}
    common = dict(event_id=event_id, variation_id=state.variation_id, occurred_at=now, round=state.round)
    if not failed:
        return m.VariationCompleted(**common)  # type: ignore[arg-type]
    if len(failed) == len(state.families):
        message = "; ".join(f"{f}: {e}" for f, e in failed.items())
        return m.VariationFailed(**common, error_message=message)  # type: ignore[arg-type]
    return m.VariationPartial(**common, failed=failed)  # type: ignore[arg-type]


CONCLUDED: dict[type, Literal["completed", "partial", "failed", "cancelled"]] = {
    m.VariationCompleted: "completed",
    m.VariationPartial: "partial",
    m.VariationFailed: "failed",
    m.VariationCancelled: "cancelled",
}


def _told_to_set(state: Variation, concluded: m.Event) -> list[m.Message]:
    """A variant's conclusion, for its set's aggregate (streams/variant_sets.py): which variants may win."""
    if state.variant_set is None or state.variant is None:
        return []
    return [
        m.VariantConcluded(
            event_id=m.derive_id(concluded.event_id, "set"),
            variation_id=state.variation_id,
            occurred_at=concluded.occurred_at,
            set_id=m.set_id(state.variant_set),
            set_name=state.variant_set,
            variant=state.variant,
            name=state.name,
            round=state.round,
            status=CONCLUDED[type(concluded)],
            images={n: i for o in state.outcomes.values() if o.status == "completed" for n, i in o.images.items()},
        )
    ]


def evolve(state: State, event: m.Message) -> State:
    match event:
        case m.VariationRequested() as e:
            return Variation(
                variation_id=e.variation_id,
                name=e.name,
                category=e.category,
                families=e.families,
                generation=e.generation,
                priority=e.priority,
                round=e.round,
                focal_point=e.focal_point,
                focal_points=e.focal_points,
                variant_set=e.variant_set,
                variant=e.variant,
            )
        case _ if state is None:
            return None
        case m.RegenerationRequested() as e:
            return state.model_copy(
                update={"round": e.round, "status": "generating", "outcomes": {}, "attempts": {}, "retries": 0}
            )
        case m.FamilyRetryRequested() as e if e.round == state.round:
            outcomes = {f: o for f, o in state.outcomes.items() if f != e.family}
            return state.model_copy(
                update={
                    "status": "generating",
                    "outcomes": outcomes,
                    "attempts": {**state.attempts, e.family: e.attempt},
                    "retries": state.retries + 1,
                }
            )
        case m.FamilyCompleted() as e if e.round == state.round and e.family not in state.outcomes:
            outcome = Outcome(
                status="completed",
                master_url=e.master.url,
                derivative_urls={d.name: d.url for d in e.derivatives},
                weights=e.weights or None,
                images={
                    i.name: m.ImageLink(url=i.url, width=i.width, height=i.height, content_type=i.content_type)
                    for i in (e.master, *e.derivatives)
                },
            )
            return state.model_copy(update={"outcomes": {**state.outcomes, e.family: outcome}})
        case m.FamilyFailed() as e if e.round == state.round and e.family not in state.outcomes:
            outcome = Outcome(status="failed", error=e.message)
            return state.model_copy(update={"outcomes": {**state.outcomes, e.family: outcome}})
        case m.VariationCompleted() as e if e.round == state.round:
            return state.model_copy(update={"status": "completed"})
        case m.VariationPartial() as e if e.round == state.round:
            return state.model_copy(update={"status": "partial"})
        case m.VariationFailed() as e if e.round == state.round:
            return state.model_copy(update={"status": "failed"})
        case m.VariationCancelled() as e if e.round == state.round:
            return state.model_copy(update={"status": "cancelled"})
        case m.FamilyAbandoned() as e if e.round == state.round and e.family in state.outcomes:
            abandoned = state.outcomes[e.family].model_copy(update={"status": "abandoned"})
            return state.model_copy(update={"outcomes": {**state.outcomes, e.family: abandoned}})
    return state


def handle(
    state: State,
    message: m.Message,
    now: datetime,
    families: Collection[str] | None = None,
    policy: BrandPolicy | None = None,
) -> tuple[State, list[m.Message]]:
    """One step of the aggregate: drop a redelivered message, fold an incoming outcome, decide,
    and fold what was decided. Returns the new state and the messages to send. `families` are the
    family names the deployment knows; a create naming others is rejected. `policy` is the brand
    policy: a create whose prompt has a blocked term is rejected, and every job carries its negative
    prompt."""
    seen = str(message.message_id)
    if state is not None and seen in state.seen:
        return state, []
    if isinstance(message, m.FamilyCompleted | m.FamilyFailed):
        if not _applies(state, message):
            # Not marked as seen: after a crash the job is sent again and its outcome must count then.
            return state, []
        state = evolve(state, message)
    elif not isinstance(message, m.Command):
        return state, []  # the aggregate's own events, read back from the log
    if isinstance(message, m.CreateVariation) and families is not None and state is None:
        unknown = sorted(set(message.families) - set(families))
        if unknown:
            return None, [_rejected(message, now, f"unknown families {unknown}")]
    create = message if isinstance(message, m.CreateVariation) and state is None else None
    if create and policy and (blocked := policy.blocked_in(create.generation.prompt)):
        return None, [_rejected(create, now, f"the prompt has terms the brand policy blocks: {blocked}")]
    out = decide(state, message, now)
    if policy is not None:
        out = [policy.applied(o) if isinstance(o, m.GenerateFamily) else o for o in out]
    for event in out:
        if isinstance(event, m.Event) and not isinstance(event, m.VariationRejected):
            state = evolve(state, event)
    if state is not None:
        state = state.model_copy(update={"seen": (*state.seen, seen)[-SEEN_LIMIT:]})
    return state, out


class Step(NamedTuple):
    state: State
    send: list[m.Message]  # decisions: events for the log, jobs for the workers
    announce: list[domain_events.DomainEvent]  # what the public contract says of them


def step(
    state: State,
    message: m.Message,
    now: datetime,
    families: Collection[str] | None = None,
    policy: BrandPolicy | None = None,
) -> Step:
    """`handle`, and the announcement rule: the public events of what was decided, and of a family's
    completion when it counted (a redelivered or late one announces nothing)."""
    new, out = handle(state, message, now, families, policy)
    folded = new is not None and state is not None and new.outcomes != state.outcomes
    counted = [message] if isinstance(message, m.FamilyCompleted) and folded else []
    announced = [public for event in [*counted, *out] for public in public_events(new, event)]
    return Step(new, out, announced)


def _applies(state: State, outcome: m.FamilyCompleted | m.FamilyFailed) -> bool:
    """The first outcome of each family of the current round counts; later ones change nothing."""
    return (
        state is not None
        and state.status == "generating"
        and outcome.round == state.round
        and outcome.family in state.families
        and outcome.family not in state.outcomes
        and outcome.attempt == state.attempts.get(outcome.family, 1)  # not a late one of an earlier attempt
    )


def public_events(state: State, event: m.Message) -> list[domain_events.DomainEvent]:
    """The public domain events an internal event announces (the original product's contract)."""
    if state is None or not isinstance(event, m.Event):
        return []
    common = dict(
        id=m.derive_id(event.event_id, "domain"),
        time=event.occurred_at,
        correlation_id=event.event_id,
        variation_id=event.variation_id,
    )
    masters = {f: o.master_url for f, o in state.outcomes.items() if o.master_url}
    match event:
        case m.VariationRequested() | m.RegenerationRequested():
            return [domain_events.ImageVariationStarted(**common, family_count=len(state.families))]  # type: ignore[arg-type]
        case m.FamilyCompleted() as e:
            return [
                domain_events.ImageFamilyCompleted(
                    **common,  # type: ignore[arg-type]
                    family_name=e.family,
                    public_url=e.master.url,
                    derivative_urls={d.name: d.url for d in e.derivatives},
                    images={
                        i.name: domain_events.ImageRef(
                            url=i.url, width=i.width, height=i.height, content_type=i.content_type
                        )
                        for i in (e.master, *e.derivatives)
                    },
                )
            ]
        case m.VariationCompleted():
            return [domain_events.ImageVariationCompleted(**common, public_urls=masters)]  # type: ignore[arg-type]
        case m.VariationPartial() as e:
            return [domain_events.ImageVariationPartial(**common, partial_urls=masters, errors=e.failed)]  # type: ignore[arg-type]
        case m.VariationFailed() as e:
            return [domain_events.ImageVariationFailed(**common, error_message=e.error_message)]  # type: ignore[arg-type]
        case m.VariationCancelled():
            return [domain_events.ImageVariationCancelled(**common, public_urls=masters)]  # type: ignore[arg-type]
    return []
