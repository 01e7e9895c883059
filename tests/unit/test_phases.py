"""Cutting a batch of events where applying them phase by phase would reorder one row's events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from projections.handlers import phases
from streams import messages as m

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def started(vid: uuid.UUID, family: str, round_: int = 1) -> m.FamilyStarted:
    return m.FamilyStarted(event_id=uuid.uuid4(), variation_id=vid, occurred_at=NOW, job_id=uuid.uuid4(),
                           family=family, round=round_, attempt=1, worker="w")  # fmt: skip


def failed(vid: uuid.UUID, family: str, round_: int = 1) -> m.FamilyFailed:
    return m.FamilyFailed(event_id=uuid.uuid4(), variation_id=vid, occurred_at=NOW, job_id=uuid.uuid4(),
                          family=family, round=round_, attempt=1, error_kind="E", message="x",
                          retryable=False)  # fmt: skip


def concluded(vid: uuid.UUID, round_: int = 1) -> m.VariationFailed:
    return m.VariationFailed(event_id=uuid.uuid4(), variation_id=vid, occurred_at=NOW, round=round_, error_message="x")


def regenerated(vid: uuid.UUID, round_: int = 2) -> m.RegenerationRequested:
    return m.RegenerationRequested(event_id=uuid.uuid4(), variation_id=vid, occurred_at=NOW,
                                   command_id=uuid.uuid4(), round=round_)  # fmt: skip


def test_families_drawn_one_after_another_and_other_variations_stay_in_one_batch() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    events = [started(a, "square"), failed(a, "square"), started(a, "hero"), started(b, "square"),
              failed(a, "hero"), concluded(a), failed(b, "square")]  # fmt: skip
    assert phases(events) == [events]


def test_a_regeneration_after_its_round_stays_in_the_batch_the_next_round_applied_after_it() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    events = [started(a, "square"), failed(a, "square"), concluded(a), started(b, "square"), regenerated(a),
              started(a, "square", 2), failed(a, "square", 2), concluded(a, 2)]  # fmt: skip
    assert phases(events) == [events]


def test_a_row_going_back_to_an_earlier_phase_of_its_round_starts_a_new_batch() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    first = [started(a, "square"), failed(a, "square"), concluded(a), started(b, "square")]
    # a family started again after its outcome (a retried job) is applied after that outcome
    again = [started(a, "square")]
    assert phases([*first, *again]) == [first, again]
    # a late event of an earlier round is applied after the later round it follows
    late = [failed(a, "hero")]
    second = [regenerated(a), started(a, "square", 2)]
    assert phases([*first, *second, *late]) == [first + second, late]
