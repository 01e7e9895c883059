"""Where each message the aggregate decides on is sent: a pure function of the message."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from streams import domain_events, topics
from streams import messages as m
from tests.builders import generate_family, generation

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
VID = m.variation_id("spring-sale")
GEN = generation("fresh flowers", 7, steps=4, guidance=5.0)


def job(priority: m.Priority) -> m.GenerateFamily:
    return generate_family("spring-sale", "hero", GEN, variation_id=VID, priority=priority)


def test_a_job_goes_to_its_family_s_topic_and_a_dx_job_to_its_priority_twin() -> None:
    assert topics.route(job("normal")) == ("imagegen.family.hero",)
    assert topics.route(job("dx")) == ("imagegen.family.hero.priority",)


def test_a_cancellation_tells_the_workers_first_then_the_log() -> None:
    cancelled = m.VariationCancelled(
        event_id=uuid.uuid4(), variation_id=VID, occurred_at=NOW, command_id=uuid.uuid4(), round=1, families=("hero",)
    )
    assert topics.route(cancelled) == (topics.CONTROL, topics.EVENTS)


def test_events_go_to_the_log_and_domain_events_to_the_public_topic() -> None:
    done = m.VariationCompleted(event_id=uuid.uuid4(), variation_id=VID, occurred_at=NOW, round=1)
    assert topics.route(done) == (topics.EVENTS,)
    public = domain_events.ImageVariationCompleted(
        id=uuid.uuid4(), time=NOW, correlation_id=uuid.uuid4(), variation_id=VID, public_urls={}
    )
    assert topics.route(public) == (topics.DOMAIN_EVENTS,)
