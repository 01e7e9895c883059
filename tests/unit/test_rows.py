"""The read model's rows folded from events, in Python, with no database: what the projector
writes for a batch (projections/rows.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from projections.rows import Family, Fold, Variation, evolve
from streams import messages as m
from tests.builders import generation

NOW = datetime(2026, 11, 25, tzinfo=UTC)
GEN = generation("a lighthouse at dawn", 3)
NAME = "lighthouse"
VID = m.variation_id(NAME)


def at(seconds: int) -> dict:
    return dict(event_id=uuid.uuid4(), variation_id=VID, occurred_at=NOW + timedelta(seconds=seconds))


def requested(*families: str) -> m.VariationRequested:
    return m.VariationRequested(
        command_id=uuid.uuid4(),
        name=NAME,
        category="sea",
        families=families,
        generation=GEN,
        priority="normal",
        **at(0),
    )


def job(family: str, round_: int) -> dict:
    return dict(job_id=m.derive_id(VID, round_, family, 1), family=family, round=round_, attempt=1)


def started(family: str, round_: int = 1, t: int = 1) -> m.FamilyStarted:
    return m.FamilyStarted(worker="gpu-1", **job(family, round_), **at(t))


def image(name: str, round_: int) -> m.StoredImage:
    return m.StoredImage(
        name=name,
        key=f"{NAME}/{name}.webp",
        url=f"http://x/{name}?r={round_}",
        width=512,
        height=512,
        bytes=round_,
        crop=(0, 0, 1024, 1024),
        crop_reason="face",
        crop_clear=True,
        scale=0.5,
    )


def completed(family: str, round_: int = 1, t: int = 2) -> m.FamilyCompleted:
    return m.FamilyCompleted(
        master=image(family, round_),
        derivatives=(image("profile", round_),),
        model="tiny",
        seed=3,
        duration_s=0.5,
        subject=(1, 2, 3, 4),
        subject_reason="face",
        **job(family, round_),
        **at(t),
    )


def failed(family: str, round_: int = 1, t: int = 2) -> m.FamilyFailed:
    return m.FamilyFailed(
        error_kind="OutOfMemoryError", message="CUDA out of memory", retryable=True, **job(family, round_), **at(t)
    )


def fold(events: list[m.Event], loaded: Fold | None = None) -> Fold:
    state = loaded or Fold()
    for event in events:
        evolve(state, event)
    return state


def loaded(state: Fold) -> Fold:
    """What the next batch loads of `state`'s rows: the same rows, none of them made there."""
    again = Fold()
    again.load(list(state.variations.values()), list(state.families.values()))
    return again


def test_a_whole_life_in_one_batch_is_one_new_row_each_in_its_final_state() -> None:
    state = fold([requested("square"), started("square"), completed("square"), m.VariationCompleted(round=1, **at(3))])
    assert state.made == {VID, (VID, "square")} and not state.changed
    v, f = state.variations[VID], state.families[(VID, "square")]
    assert isinstance(v, Variation) and (v.status, v.completed_at) == ("completed", NOW + timedelta(seconds=3))
    assert isinstance(f, Family) and (f.status, f.attempts, f.worker, f.master_url) == (
        "completed",
        1,
        "gpu-1",
        "http://x/square?r=1",
    )
    assert (f.subject_left, f.subject_height, f.subject_reason) == (1, 4, "face")
    assert [d[2:5] for d in state.derivatives[(VID, "square")]] == [
        ("profile", f"{NAME}/profile.webp", "http://x/profile?r=1")
    ]


def test_the_first_outcome_of_a_round_wins_and_a_late_start_changes_nothing() -> None:
    state = fold(
        [requested("square"), started("square"), failed("square"), completed("square", t=3), started("square", t=4)]
    )
    f = state.families[(VID, "square")]
    assert (f.status, f.error, f.attempts, f.master_url) == ("failed", "CUDA out of memory", 1, None)
    assert (VID, "square") not in state.derivatives


def test_a_regeneration_of_rows_loaded_from_the_read_model_updates_them_and_replaces_the_derivatives() -> None:
    partial = m.VariationPartial(round=1, failed={"hero": "CUDA out of memory"}, **at(3))
    before = fold(
        [requested("square", "hero"), started("square"), completed("square"), started("hero"), failed("hero"), partial]
    )
    assert before.variations[VID].error == "hero: CUDA out of memory"
    state = fold(
        [
            m.RegenerationRequested(command_id=uuid.uuid4(), round=2, **at(10)),
            started("square", 2, 11),
            completed("square", 2, 12),
        ],
        loaded(before),
    )
    assert not state.made and state.changed == {VID, (VID, "square"), (VID, "hero")}
    square, hero = state.families[(VID, "square")], state.families[(VID, "hero")]
    assert (square.round, square.status, square.attempts, square.master_url) == (
        2,
        "completed",
        2,
        "http://x/square?r=2",
    )
    # a family not drawn yet in the new round waits, and keeps no error of the old one
    assert (hero.round, hero.status, hero.error, hero.completed_at) == (2, "queued", None, None)
    assert [d[4] for d in state.derivatives[(VID, "square")]] == ["http://x/profile?r=2"]
    v = state.variations[VID]
    assert (v.round, v.status, v.error, v.completed_at) == (2, "generating", None, None)


def test_a_conclusion_or_an_outcome_of_an_earlier_round_is_ignored() -> None:
    state = fold(
        [
            requested("square"),
            m.RegenerationRequested(command_id=uuid.uuid4(), round=2, **at(1)),
            completed("square", 1),
            m.VariationFailed(round=1, error_message="boom", **at(3)),
        ]
    )
    assert (state.variations[VID].status, state.variations[VID].round) == ("generating", 2)
    assert state.families[(VID, "square")].status == "queued" and not state.derivatives


def test_a_request_for_a_variation_already_held_makes_no_new_row() -> None:
    first = fold([requested("square"), started("square")])
    state = fold([requested("square")], loaded(first))
    assert not state.made and not state.changed
    assert state.families[(VID, "square")].status == "generating"


def test_a_rejection_is_kept_as_its_own_row() -> None:
    e = m.VariationRejected(command_id=uuid.uuid4(), name=NAME, reason="name taken", **at(0))
    assert fold([e]).rejections == [(e.event_id, e.command_id, VID, NAME, "name taken", e.occurred_at)]


def test_a_retry_puts_a_failed_family_back_in_the_queue_and_its_success_completes_the_variation() -> None:
    before = fold(
        [
            requested("square"),
            started("square"),
            failed("square"),
            m.VariationFailed(round=1, error_message="square: CUDA out of memory", **at(3)),
        ]
    )
    retried = m.FamilyRetryRequested(command_id=uuid.uuid4(), family="square", round=1, attempt=2, **at(4))
    again = dict(job_id=m.derive_id(VID, 1, "square", 2), family="square", round=1, attempt=2)
    state = fold(
        [
            retried,
            m.FamilyStarted(worker="gpu-2", **again, **at(5)),
            m.FamilyCompleted(
                master=image("square", 2), derivatives=(), model="tiny", seed=3, duration_s=0.5, **again, **at(6)
            ),
            m.VariationCompleted(round=1, **at(7)),
        ],
        loaded(before),
    )
    f, v = state.families[(VID, "square")], state.variations[VID]
    assert (f.status, f.attempts, f.error, f.worker) == ("completed", 2, None, "gpu-2")
    assert (v.status, v.error) == ("completed", None)


def test_a_cancellation_marks_the_families_not_drawn_and_where_the_worker_stopped() -> None:
    cancelled = m.VariationCancelled(command_id=uuid.uuid4(), round=1, families=("landscape", "portrait"), **at(4))
    state = fold(
        [
            requested("square", "landscape", "portrait"),
            started("square"),
            completed("square", t=2),
            started("landscape", t=3),
            cancelled,
            m.FamilyCancelled(at_step=7, steps=30, **job("landscape", 1), **at(5)),
            m.FamilyCancelled(at_step=0, steps=30, **job("portrait", 1), **at(6)),
            completed("landscape", t=7),
        ]
    )
    families = {name: (f.status, f.error) for (_, name), f in state.families.items()}
    assert families == {
        "square": ("completed", None),
        "landscape": ("cancelled", "stopped at step 7 of 30"),
        "portrait": ("cancelled", "cancelled before drawing"),
    }
    v = state.variations[VID]
    assert (v.status, v.completed_at) == ("cancelled", NOW + timedelta(seconds=4))
    # a regeneration draws every family anew
    again = fold([m.RegenerationRequested(command_id=uuid.uuid4(), round=2, **at(8))], loaded(state))
    assert {f.status for f in again.families.values()} == {"queued"} and again.variations[VID].status == "generating"


def test_an_abandoned_family_keeps_its_error() -> None:
    state = fold(
        [
            requested("square"),
            started("square"),
            failed("square"),
            m.FamilyAbandoned(command_id=uuid.uuid4(), family="square", round=1, **at(4)),
        ]
    )
    f = state.families[(VID, "square")]
    assert (f.status, f.error) == ("abandoned", "CUDA out of memory")
