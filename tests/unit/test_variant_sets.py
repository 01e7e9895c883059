"""A variant set's aggregate, told as stories with no I/O: its variations tell it how they concluded,
and a user chooses its winner. The variations are driven through their own aggregate, so what the set
learns is what the variations really send."""

import uuid
from datetime import UTC, datetime

from streams import codec, domain, domain_events, variant_sets
from streams import messages as m
from tests.builders import create_variation, generation
from tests.unit.test_domain import completed, failed

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BASE = "https://img.example.com"
SET = "spring-sale"


def _variant(n: int, fail: bool = False) -> list[m.Message]:
    """Variant n of the set drawn to its end: what its aggregate sends for the set's."""
    name = f"{SET}-v{n}"
    state, out = domain.handle(
        None,
        create_variation(name, families=("square",), generation=generation("tulips", n), variant_set=SET, variant=n),
        NOW,
    )
    job = next(o for o in out if isinstance(o, m.GenerateFamily))
    state, out = domain.handle(state, failed(job) if fail else completed(job), NOW)
    return [o for o in out if isinstance(o, variant_sets.MESSAGES)]


def _choose(variant: int, round_: int = 1, reason: str = "") -> m.ChooseWinner:
    return m.ChooseWinner(
        command_id=uuid.uuid4(),
        variation_id=m.variation_id(f"{SET}-v{variant}"),
        set_id=m.set_id(SET),
        set_name=SET,
        variant=variant,
        round=round_,
        reason=reason,
    )


def _through(state, messages):
    sent, announced = [], []
    for message in messages:
        state, out, public = variant_sets.step(state, message, NOW, BASE)
        sent += out
        announced += public
    return state, sent, announced


def test_a_variant_of_a_set_tells_its_set_how_it_concluded_and_with_which_images():
    (told,) = _variant(2)
    assert isinstance(told, m.VariantConcluded)
    assert told.key == str(m.set_id(SET)).encode()  # the set's partition, not the variation's
    assert (told.set_name, told.variant, told.name, told.round, told.status) == (SET, 2, f"{SET}-v2", 1, "completed")
    assert set(told.images) == {"square", "square-d"}
    assert told.images["square"] == m.ImageLink(url="http://x/square", width=8, height=8)
    assert codec.decode_any(codec.encode(told)) == told
    (failed_told,) = _variant(3, fail=True)
    assert failed_told.status == "failed" and failed_told.images == {}
    # a variation outside any set tells nobody
    state, out = domain.handle(None, create_variation("lone", families=("square",), generation=generation("x", 1)), NOW)
    job = next(o for o in out if isinstance(o, m.GenerateFamily))
    _, out = domain.handle(state, completed(job), NOW)
    assert [type(o) for o in out] == [m.VariationCompleted]


def test_the_winner_is_chosen_then_replaced_and_each_choice_is_announced_with_the_set_urls():
    state, _, _ = _through(None, [*_variant(1), *_variant(2), *_variant(3)])
    state, sent, announced = _through(state, [_choose(2, reason="CTR +12 %")])
    (chosen,) = sent
    assert (chosen.variant, chosen.choice, chosen.name, chosen.reason) == (2, 1, f"{SET}-v2", "CTR +12 %")
    (public,) = announced
    assert isinstance(public, domain_events.ImageSetWinnerChosen)
    assert public.key == str(m.set_id(SET)).encode()
    assert public.set_urls == {
        "square": f"{BASE}/api/images/sets/{SET}/square",
        "square-d": f"{BASE}/api/images/sets/{SET}/square-d",
    }
    assert public.images["square"].url == "http://x/square" and public.images["square"].width == 8
    wire = codec.encode(public)
    assert b'"setUrls"' in wire and codec.decode_domain_event(wire) == public
    state, sent, _ = _through(state, [_choose(3)])
    assert [(c.variant, c.choice) for c in sent] == [(3, 2)]
    assert (state.winner, state.choices) == (3, 2)


def test_the_standing_winner_chosen_again_as_it_stands_is_not_a_new_choice():
    state, _, _ = _through(None, [*_variant(1), *_variant(2)])
    state, sent, _ = _through(state, [_choose(1, reason="week 1"), _choose(1, reason="week 1")])  # a retried post
    assert [(c.variant, c.choice) for c in sent] == [(1, 1)]
    state, sent, _ = _through(state, [_choose(1, reason="week 2")])  # a new reason is a new decision
    assert [(c.variant, c.choice, c.reason) for c in sent] == [(1, 2, "week 2")]


def test_a_redelivered_choice_or_conclusion_changes_nothing():
    state, _, _ = _through(None, [*_variant(1), *_variant(2)])
    choice = _choose(1)
    state, sent, _ = _through(state, [choice])
    again, sent_again, announced_again = _through(state, [choice, *_variant(2)])
    assert len(sent) == 1 and sent_again == [] and announced_again == [] and again == state


def test_a_failed_or_unknown_variant_cannot_win():
    state, _, _ = _through(None, [*_variant(1), *_variant(2, fail=True)])
    assert "failed, not completed" in variant_sets.refusal(state, 2)
    assert "no concluded variant 7" in variant_sets.refusal(state, 7)
    state, sent, announced = _through(state, [_choose(2)])
    assert sent == [] and announced == [] and state.winner is None
    # a choice naming another variation than the set's variant 1 is refused too
    forged = _choose(1).model_copy(update={"variation_id": m.variation_id("elsewhere")})
    state, sent, _ = _through(state, [forged])
    assert sent == [] and state.winner is None


def test_a_choice_that_comes_before_the_set_heard_of_its_round_waits_for_it_and_keeps_its_order():
    # the read model said variant 2 completed; its conclusion is on another topic, not read yet
    state, sent, _ = _through(None, [*_variant(1), _choose(2), _choose(1)])
    assert sent == [] and len(state.held) == 2
    state, sent, _ = _through(state, _variant(2))
    assert [(c.variant, c.choice) for c in sent] == [(2, 1), (1, 2)]  # in the order they were made
    assert state.winner == 1 and state.held == ()
