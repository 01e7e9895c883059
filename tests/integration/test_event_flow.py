"""The event flow on the real broker, seen as a Kafka producer and consumer would: commands posted
straight to imagegen.commands, events read from imagegen.events and imagegen.domain-events."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from streams import codec, topics
from streams import messages as m
from tests.builders import create_variation, generate_family, generation
from tests.integration.kafka import produce, read_until

GEN = generation("a red bicycle by a canal", 7)


def create(name: str, gen: m.Generation = GEN, families: tuple[str, ...] = ("square", "portrait")) -> m.CreateVariation:
    return create_variation(name, families=families, generation=gen)


def job_for(command: m.CreateVariation, round_: int, **extra) -> m.GenerateFamily:
    """The work the aggregate sends for the command's only family, as a producer would post it."""
    (family,) = command.families
    return generate_family(
        command.name,
        family,
        GEN,
        job_id=m.derive_id(command.variation_id, round_, family, 1),
        variation_id=command.variation_id,
        round=round_,
        **extra,
    )


def of(variation_id: uuid.UUID):
    key = str(variation_id).encode()
    return lambda record: record.key == key


def types(records) -> list[str]:
    return [json.loads(r.value)["type"] for r in records]


def concluded(records) -> bool:
    return any(
        t.startswith("Variation") and t not in ("VariationRequested", "VariationRejected") for t in types(records)
    )


async def test_a_command_delivered_twice_is_handled_once(services, stack):
    # a producer retries: the same CreateVariation arrives twice
    command = create("bicycle-canal")
    raw = codec.encode(command)
    await produce(stack.bootstrap_servers, topics.COMMANDS, command.key, raw, raw)
    events = await read_until(stack.bootstrap_servers, topics.EVENTS, concluded, of(command.variation_id))
    kinds = types(events)
    assert kinds.count("VariationRequested") == 1
    assert sorted(t for t in kinds if t.startswith("Family")) == [
        "FamilyCompleted",
        "FamilyCompleted",
        "FamilyStarted",
        "FamilyStarted",
    ]
    assert kinds[-1] == "VariationCompleted"
    ids = [json.loads(r.value)["event_id"] for r in events]
    assert len(ids) == len(set(ids))

    # other services hear about it on the public contract
    public = await read_until(
        stack.bootstrap_servers,
        topics.DOMAIN_EVENTS,
        lambda rs: "IMAGE_VARIATION_COMPLETED" in types(rs),
        of(command.variation_id),
    )
    assert types(public) == [
        "IMAGE_VARIATION_STARTED",
        "IMAGE_FAMILY_COMPLETED",
        "IMAGE_FAMILY_COMPLETED",
        "IMAGE_VARIATION_COMPLETED",
    ]
    done = codec.decode_domain_event(public[-1].value)
    assert set(done.public_urls) == {"square", "portrait"}
    assert all(url.endswith(f"/api/images/bicycle-canal/{f}") for f, url in done.public_urls.items())


async def test_a_taken_name_is_rejected_in_the_log(services, stack):
    first = create("taken-name", families=("square",))
    await produce(stack.bootstrap_servers, topics.COMMANDS, first.key, codec.encode(first))
    await read_until(stack.bootstrap_servers, topics.EVENTS, concluded, of(first.variation_id))
    second = create("taken-name", GEN.model_copy(update={"seed": 8}), families=("square",))
    await produce(stack.bootstrap_servers, topics.COMMANDS, second.key, codec.encode(second))
    events = await read_until(
        stack.bootstrap_servers, topics.EVENTS, lambda rs: "VariationRejected" in types(rs), of(first.variation_id)
    )
    rejected = codec.decode_event(events[-1].value)
    assert isinstance(rejected, m.VariationRejected) and rejected.command_id == second.command_id
    assert types(events).count("VariationRequested") == 1


@pytest.mark.parametrize(
    "topic", [topics.COMMANDS, topics.EVENTS, topics.family("square"), topics.family("square", priority=True)]
)
async def test_an_undecodable_message_goes_to_the_dead_letter_topic_and_its_consumer_goes_on(services, stack, topic):
    key = f"garbage-{topic}".encode()
    # on the event log, which other stories read whole, a JSON object of no known type; elsewhere not JSON
    garbage, why = (b"\x00not json", b"not JSON")
    if topic == topics.EVENTS:
        garbage, why = b'{"type": "NotAnEvent"}', b"NotAnEvent"
    await produce(stack.bootstrap_servers, topic, key, garbage)
    dead = await read_until(stack.bootstrap_servers, topics.DEAD_LETTER, bool, lambda r: r.key == key)
    headers = dict(dead[0].headers)
    assert headers["topic"] == topic.encode() and why in headers["reason"]
    assert dead[0].value == garbage
    # the agents are still alive: the next command is handled and its square drawn
    after = create(f"after-garbage-{topic.replace('.', '-')}", families=("square",))
    await produce(stack.bootstrap_servers, topics.COMMANDS, after.key, codec.encode(after))
    events = await read_until(stack.bootstrap_servers, topics.EVENTS, concluded, of(after.variation_id))
    assert types(events)[-1] == "VariationCompleted"


async def test_a_job_delivered_twice_changes_nothing_downstream(services, stack):
    command = create("twice-drawn", families=("facebook-og",))
    await produce(stack.bootstrap_servers, topics.COMMANDS, command.key, codec.encode(command))
    first = await read_until(stack.bootstrap_servers, topics.EVENTS, concluded, of(command.variation_id))
    # the job, as the aggregate sent it, is redelivered after it was done (a rebalance, a worker restart)
    (job,) = await read_until(stack.bootstrap_servers, topics.family("facebook-og"), bool, of(command.variation_id))
    await produce(stack.bootstrap_servers, topics.family("facebook-og"), job.key, job.value)
    events = await read_until(
        stack.bootstrap_servers,
        topics.EVENTS,
        lambda rs: types(rs).count("FamilyCompleted") == 2,
        of(command.variation_id),
    )
    completed = [codec.decode_event(r.value) for r in events if json.loads(r.value)["type"] == "FamilyCompleted"]
    assert completed[0].event_id == completed[1].event_id  # same cause, same id
    assert completed[0].master == completed[1].master  # same pixels, same bytes
    assert types(events).count("VariationCompleted") == 1 == types(first).count("VariationCompleted")
    async with httpx.AsyncClient(base_url=services.api_url) as api:
        variation = (await api.get("/api/images/variations/name/twice-drawn")).json()
    assert variation["status"] == "completed" and variation["families"][0]["attempts"] == 1


async def test_a_job_drawn_with_other_weights_than_last_round_says_so(services, stack):
    command = create("weights-changed", families=("facebook-og",))
    await produce(stack.bootstrap_servers, topics.COMMANDS, command.key, codec.encode(command))
    await read_until(stack.bootstrap_servers, topics.EVENTS, concluded, of(command.variation_id))
    # a regenerate whose previous round was drawn with weights this worker does not have
    job = job_for(command, 2, expected_weights="sha256:0000")
    await produce(stack.bootstrap_servers, topics.family("facebook-og"), job.key, codec.encode(job))
    events = await read_until(
        stack.bootstrap_servers,
        topics.EVENTS,
        lambda rs: types(rs).count("FamilyCompleted") == 2,
        of(command.variation_id),
    )
    first, second = [codec.decode_event(r.value) for r in events if json.loads(r.value)["type"] == "FamilyCompleted"]
    assert first.warnings == () and first.generation == GEN and first.weights.startswith("sha256:")
    (warning,) = second.warnings
    assert "sha256:0000" in warning and first.weights in warning


async def test_jobs_waiting_together_are_drawn_together(services, stack):
    # the hero agent is busy with a long job while three more of its family arrive and wait
    blocker = generate_family("batch-blocker", "hero", GEN.model_copy(update={"steps": 40}))
    await produce(stack.bootstrap_servers, topics.family("hero"), blocker.key, codec.encode(blocker))
    # the three share one key, so their order is observable in one partition
    vid = m.variation_id("batch-me")
    waiting = [
        generate_family(
            f"batch-me-{i}",
            "hero",
            GEN.model_copy(update={"seed": 100 + i, "prompt": f"a harbour, take {i}"}),
            variation_id=vid,
        )
        for i in range(3)
    ]
    await produce(
        stack.bootstrap_servers, topics.family("hero"), vid.bytes, *(codec.encode(j) for j in waiting), together=True
    )
    events = await read_until(
        stack.bootstrap_servers, topics.EVENTS, lambda rs: types(rs).count("FamilyCompleted") == 3, of(vid)
    )
    # taken in one batch: every job is started before the first one completes
    assert types(events) == ["FamilyStarted"] * 3 + ["FamilyCompleted"] * 3
    completed = [codec.decode_event(r.value) for r in events[3:]]
    assert [c.job_id for c in completed] == [j.job_id for j in waiting]
    assert len({c.master.bytes for c in completed}) == 3  # three different pictures
