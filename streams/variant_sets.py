"""A variant set's aggregate, pure: the set (an A/B test's variations, {set}-v1…) learns how each of
its variants concluded, from the variations themselves, and records the winner a user chooses. Keyed
by the set's id, so its choices are totally ordered: a later one replaces an earlier one. No Kafka,
SQL or HTTP here."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from streams import domain_events
from streams import messages as m

SEEN_LIMIT = 256  # ids of handled commands and events kept to drop redeliveries


class Variant(BaseModel):
    """A variant as its last concluded round left it."""

    model_config = ConfigDict(frozen=True)

    variation_id: uuid.UUID
    name: str
    round: int
    status: str
    images: dict[str, m.ImageLink] = {}


class VariantSet(BaseModel):
    model_config = ConfigDict(frozen=True)

    set_id: uuid.UUID
    name: str
    variants: dict[int, Variant] = {}
    winner: int | None = None  # the variant chosen last, at which round, and why
    winner_round: int | None = None
    reason: str = ""
    choices: int = 0
    # choices of a round the set has not heard of yet (the variant's conclusion and the choice come by
    # different topics), in the order they came: each is decided once the set learns of its round
    held: tuple[m.ChooseWinner, ...] = ()
    seen: tuple[str, ...] = ()


State = VariantSet | None
MESSAGES = (m.ChooseWinner, m.SetEvent)  # what this aggregate handles; the variations agent routes them here


class Step(NamedTuple):
    state: State
    send: list[m.Message]
    announce: list[domain_events.DomainEvent]


def refusal(state: State, variant: int) -> str | None:
    """Why `variant` cannot win (None: it can)."""
    found = state.variants.get(variant) if state is not None else None
    if found is None:
        return f"the set has no concluded variant {variant}"
    if found.status != "completed":
        return f"variant {variant} ({found.name}) is {found.status}, not completed: only a completed variant can win"
    return None


def set_urls(api_base: str, set_name: str, names: Iterable[str]) -> dict[str, str]:
    """The set's stable URLs of these image names: they serve whichever variant won last."""
    return {name: f"{api_base.rstrip('/')}/api/images/sets/{set_name}/{name}" for name in names}


def step(state: State, message: m.Message, now: datetime, api_base: str) -> Step:
    """One message through the set: a variant's conclusion is folded in, and the choices held for it
    decided; a choice of a completed variant is recorded and announced, one of a round not heard of
    yet held; anything else, or a redelivery, changes nothing (the API refuses those before sending)."""
    seen = str(message.message_id)
    if state is not None and seen in state.seen:
        return Step(state, [], [])
    match message:
        case m.VariantConcluded() as e:
            state = state or VariantSet(set_id=e.set_id, name=e.set_name)
            known = state.variants.get(e.variant)
            if known is None or e.round >= known.round:
                variant = Variant(
                    variation_id=e.variation_id, name=e.name, round=e.round, status=e.status, images=e.images
                )
                state = state.model_copy(update={"variants": {**state.variants, e.variant: variant}})
            held, state = state.held, state.model_copy(update={"held": ()})
        case m.ChooseWinner() as cmd:
            state = state or VariantSet(set_id=cmd.set_id, name=cmd.set_name)
            held = (*state.held, cmd)
            state = state.model_copy(update={"held": ()})
        case _:
            return Step(state, [], [])
    chosen: list[m.VariantChosen] = []
    for i, cmd in enumerate(held):
        if _waits(state, cmd):  # it, and the choices after it, wait for the round it names
            state = state.model_copy(update={"held": held[i:]})
            break
        if (made := _chosen(state, cmd, now)) is not None:
            chosen.append(made)
            update = {"winner": made.variant, "winner_round": made.round, "reason": made.reason, "choices": made.choice}
            state = state.model_copy(update=update)
    state = _seen(state, seen)
    return Step(state, list(chosen), [announced(c, api_base) for c in chosen])


def _waits(state: VariantSet, cmd: m.ChooseWinner) -> bool:
    known = state.variants.get(cmd.variant)
    return known is None or known.round < cmd.round


def _chosen(state: VariantSet, cmd: m.ChooseWinner, now: datetime) -> m.VariantChosen | None:
    """The choice `cmd` makes; None for a variant that cannot win, or for the standing winner chosen again
    as it stands (a retried post, whenever it comes: the history records each decision once)."""
    if refusal(state, cmd.variant) is not None or state.variants[cmd.variant].variation_id != cmd.variation_id:
        return None
    won = state.variants[cmd.variant]
    if (state.winner, state.winner_round, state.reason) == (cmd.variant, won.round, cmd.reason):
        return None
    return m.VariantChosen(
        event_id=m.derive_id(cmd.command_id, "chosen"),
        variation_id=won.variation_id,
        occurred_at=now,
        set_id=state.set_id,
        set_name=state.name,
        variant=cmd.variant,
        name=won.name,
        round=won.round,
        command_id=cmd.command_id,
        choice=state.choices + 1,
        reason=cmd.reason,
        images=won.images,
    )


def _seen(state: VariantSet, seen: str) -> VariantSet:
    return state.model_copy(update={"seen": (*state.seen, seen)[-SEEN_LIMIT:]})


def announced(chosen: m.VariantChosen, api_base: str) -> domain_events.ImageSetWinnerChosen:
    return domain_events.ImageSetWinnerChosen(
        id=m.derive_id(chosen.event_id, "domain"),
        time=chosen.occurred_at,
        correlation_id=chosen.event_id,
        variation_id=chosen.variation_id,
        set_id=chosen.set_id,
        set_name=chosen.set_name,
        variant=chosen.variant,
        variation_name=chosen.name,
        round=chosen.round,
        choice=chosen.choice,
        reason=chosen.reason,
        images={
            name: domain_events.ImageRef(url=i.url, width=i.width, height=i.height, content_type=i.content_type)
            for name, i in chosen.images.items()
        },
        set_urls=set_urls(api_base, chosen.set_name, chosen.images),
    )
