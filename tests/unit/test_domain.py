"""The variation aggregate, told as stories, with no fixtures and no I/O."""

import json
import typing
import uuid
from datetime import UTC, datetime

import pytest

from streams import codec, domain, domain_events
from streams import messages as m
from tests.builders import create_variation, generation

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GEN = generation("sunset over a beach", 42, steps=4, guidance=5.0)


def create(name="hero-sunset-beach", families=("square", "landscape", "facebook-og"), gen=GEN):
    return create_variation(name, families=families, generation=gen, command_id=m.derive_id("create", name, gen.seed))


def image(name, url):
    return m.StoredImage(name=name, key=f"k/{name}.webp", url=url, width=8, height=8, bytes=1)


def completed(job: m.GenerateFamily) -> m.FamilyCompleted:
    return m.FamilyCompleted(
        event_id=m.derive_id(job.job_id, "completed"),
        variation_id=job.variation_id,
        occurred_at=NOW,
        job_id=job.job_id,
        family=job.family,
        round=job.round,
        attempt=job.attempt,
        master=image(job.family, f"http://x/{job.family}"),
        derivatives=(image(f"{job.family}-d", f"http://x/{job.family}-d"),),
        model=job.generation.model,
        seed=job.generation.seed,
        duration_s=0.1,
    )


def failed(job: m.GenerateFamily, message="boom") -> m.FamilyFailed:
    return m.FamilyFailed(
        event_id=m.derive_id(job.job_id, "failed"),
        variation_id=job.variation_id,
        occurred_at=NOW,
        job_id=job.job_id,
        family=job.family,
        round=job.round,
        attempt=job.attempt,
        error_kind="GenerationError",
        message=message,
        retryable=False,
    )


def run(state, message):
    return domain.handle(state, message, NOW)


def jobs(out):
    return [x for x in out if isinstance(x, m.GenerateFamily)]


def test_variation_id_is_derived_from_the_name():
    assert m.variation_id("hero-sunset-beach") == m.variation_id("hero-sunset-beach")
    assert m.variation_id("hero-sunset-beach") != m.variation_id("hero-sunset-beach-2")


def test_create_requests_the_variation_and_one_job_per_family():
    state, out = run(None, create())
    assert isinstance(out[0], m.VariationRequested)
    assert [j.family for j in jobs(out)] == ["square", "landscape", "facebook-og"]
    assert all(j.round == 1 and j.generation == GEN for j in jobs(out))
    assert state.status == "generating"


def test_a_taken_name_is_rejected_and_the_first_variation_is_untouched():
    state, _ = run(None, create())
    other = create(gen=GEN.model_copy(update={"seed": 7}))
    after, out = run(state, other)
    assert [type(e) for e in out] == [m.VariationRejected]
    assert "already taken" in out[0].reason
    assert after.generation == state.generation and after.round == state.round


def test_a_redelivered_create_changes_nothing():
    state, _ = run(None, create())
    again, out = run(state, create())
    assert out == [] and again == state


def test_all_families_complete_then_the_variation_completes():
    state, out = run(None, create())
    work = jobs(out)
    for job in work[:-1]:
        state, more = run(state, completed(job))
        assert more == []
    state, out = run(state, completed(work[-1]))
    assert [type(e) for e in out] == [m.VariationCompleted]
    assert state.status == "completed"


def test_one_family_fails_the_others_complete_then_partial():
    state, out = run(None, create())
    square, landscape, og = jobs(out)
    state, _ = run(state, failed(square, "out of memory"))
    state, _ = run(state, completed(landscape))
    state, out = run(state, completed(og))
    assert isinstance(out[0], m.VariationPartial)
    assert out[0].failed == {"square": "out of memory"}
    assert state.status == "partial"


def test_every_family_fails_then_the_variation_fails():
    state, out = run(None, create(families=("square",)))
    state, out = run(state, failed(jobs(out)[0], "bad weights"))
    assert isinstance(out[0], m.VariationFailed) and "bad weights" in out[0].error_message


def test_a_duplicate_outcome_is_counted_once():
    state, out = run(None, create(families=("square", "landscape")))
    square, _ = jobs(out)
    state, _ = run(state, completed(square))
    again, out = run(state, completed(square))
    assert out == [] and again == state


def test_regenerate_starts_a_new_round_with_the_same_parameters():
    state, out = run(None, create(families=("square",)))
    state, _ = run(state, completed(jobs(out)[0]))
    regen = m.RegenerateVariation(command_id=uuid.uuid4(), variation_id=state.variation_id)
    state, out = run(state, regen)
    assert isinstance(out[0], m.RegenerationRequested) and out[0].round == 2
    (job,) = jobs(out)
    assert job.round == 2 and job.generation == GEN
    assert state.status == "generating" and state.outcomes == {}


def test_an_outcome_of_an_old_round_is_ignored():
    state, out = run(None, create(families=("square",)))
    first = jobs(out)[0]
    state, out = run(state, m.RegenerateVariation(command_id=uuid.uuid4(), variation_id=state.variation_id))
    state, out = run(state, completed(first))
    assert out == [] and state.status == "generating"


def test_regenerating_an_unknown_variation_does_nothing():
    assert run(None, m.RegenerateVariation(command_id=uuid.uuid4(), variation_id=uuid.uuid4())) == (None, [])


def test_event_ids_are_derived_from_their_cause():
    _, first = run(None, create())
    _, second = run(None, create())
    assert [x.message_id for x in first] == [x.message_id for x in second]


@pytest.mark.parametrize("kind", ["completed", "partial"])
def test_public_events_carry_the_original_products_payloads(kind):
    state, out = run(None, create(families=("square", "landscape")))
    started = domain.public_events(state, out[0])
    assert started[0].type == "IMAGE_VARIATION_STARTED" and started[0].family_count == 2
    square, landscape = jobs(out)
    state, _ = run(state, completed(square))
    family = domain.public_events(state, completed(square))[0]
    assert family.type == "IMAGE_FAMILY_COMPLETED" and family.public_url == "http://x/square"
    assert family.derivative_urls == {"square-d": "http://x/square-d"}
    # version 2: every image with its size and type, for the meta tags of a page
    assert family.images["square-d"] == domain_events.ImageRef(
        url="http://x/square-d", width=8, height=8, content_type="image/webp"
    )
    assert family.images["square"].url == "http://x/square" and family.version == 2
    v1 = json.loads(codec.encode(family))
    v1["version"] = 1
    del v1["images"]
    assert codec.decode_domain_event(json.dumps(v1)).images == {  # type: ignore[attr-defined]
        "square": domain_events.ImageRef(url="http://x/square"),
        "square-d": domain_events.ImageRef(url="http://x/square-d"),
    }
    last = completed(landscape) if kind == "completed" else failed(landscape)
    state, out = run(state, last)
    (public,) = domain.public_events(state, out[0])
    wire = codec.encode(public)
    assert b'"variationId"' in wire
    if kind == "completed":
        assert public.type == "IMAGE_VARIATION_COMPLETED"
        assert public.public_urls == {"square": "http://x/square", "landscape": "http://x/landscape"}
    else:
        assert public.type == "IMAGE_VARIATION_PARTIAL"
        assert public.partial_urls == {"square": "http://x/square"} and public.errors == {"landscape": "boom"}
    assert codec.decode_domain_event(wire) == public


def test_undecodable_messages_say_why():
    for raw, reason in [
        (b"\xff", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"type": "Nope"}', "Nope"),
        (b'{"type": "CreateVariation", "version": 9}', "unsupported version"),
        (b'{"type": "CreateVariation"}', "command_id"),
    ]:
        with pytest.raises(codec.UndecodableMessage, match=reason):
            codec.decode_any(raw)


def test_a_version_1_family_completed_is_upcast_to_the_current_version():
    _, out = run(None, create(families=("square",)))
    current = completed(jobs(out)[0])
    wire = json.loads(codec.encode(current))
    wire["version"] = 1
    wire["derivatives"] = [
        {
            "name": "og-square",
            "key": "k",
            "url": "u",
            "width": 1200,
            "height": 1200,
            "bytes": 9,
            "crop": [0, 0, 1024, 1024],
        }
    ]
    del wire["subject"], wire["subject_reason"]
    read = codec.decode_event(json.dumps(wire))
    assert read.version == 2 == codec.VERSIONS["FamilyCompleted"]
    (og,) = read.derivatives
    # version 1 framed every crop with libvips' entropy smartcrop; the crop box gives the scale
    assert (og.crop_reason, og.scale, og.crop_clear) == ("entropy", 1.1719, None)
    wire["version"] = 3
    with pytest.raises(codec.UndecodableMessage, match="unsupported version 3"):
        codec.decode_event(json.dumps(wire))


def test_every_message_is_written_at_its_type_s_current_version():
    for union in (codec.AnyCommand, codec.AnyEvent, codec.AnyDomainEvent):
        for cls in typing.get_args(typing.get_args(union)[0]):
            kind = cls.model_fields["type"].default
            assert cls.model_fields["version"].default == codec.VERSIONS.get(kind, 1), kind


def test_messages_round_trip_on_the_wire():
    _, out = run(None, create())
    for message in out:
        raw = codec.encode(message)
        decoded = codec.decode_work(raw) if isinstance(message, m.GenerateFamily) else codec.decode_any(raw)
        assert decoded == message


def test_an_outcome_read_before_its_regenerate_counts_once_the_job_comes_again():
    # the agent sent round-2 jobs and crashed before recording round 2; on restart a round-2 outcome
    # is read before the redelivered RegenerateVariation (two topics keep no order between them)
    state, out = run(None, create(families=("square",)))
    round1, _ = run(state, completed(jobs(out)[0]))
    regen = m.RegenerateVariation(command_id=uuid.uuid4(), variation_id=state.variation_id)
    _, lost = run(round1, regen)
    early = completed(jobs(lost)[0])
    state, out = run(round1, early)
    assert out == [] and state == round1
    state, out = run(state, regen)  # redelivered: the same jobs go out again...
    assert jobs(out) == jobs(lost)
    state, out = run(state, early)  # ...and the redrawn outcome (same id) concludes round 2
    assert [type(e) for e in out] == [m.VariationCompleted] and state.round == 2


def test_the_first_outcome_of_a_family_wins():
    state, out = run(None, create(families=("square", "landscape")))
    square, _ = jobs(out)
    state, _ = run(state, failed(square))
    state, out = run(state, completed(square))  # a redelivered job that succeeded this time
    assert out == [] and state.outcomes["square"].status == "failed"


def test_a_create_naming_unknown_families_is_rejected():
    state, out = domain.handle(None, create(families=("square", "octagon")), NOW, families=("square",))
    assert state is None
    assert [type(e) for e in out] == [m.VariationRejected] and "octagon" in out[0].reason


def test_a_create_whose_id_is_not_derived_from_its_name_is_undecodable():
    raw = codec.encode(create()).replace(str(m.variation_id("hero-sunset-beach")).encode(), str(uuid.uuid4()).encode())
    with pytest.raises(codec.UndecodableMessage, match="uuid5"):
        codec.decode_command(raw)


def test_a_regenerate_tells_each_job_the_weights_its_family_was_drawn_with():
    state, out = run(None, create(families=("square", "landscape")))
    square, landscape = jobs(out)
    assert square.expected_weights is None  # a first round has nothing to compare with
    drawn = completed(square).model_copy(update={"weights": "sha256:aaaa"})
    state, _ = run(state, drawn)
    state, _ = run(state, failed(landscape))
    state, out = run(state, m.RegenerateVariation(command_id=uuid.uuid4(), variation_id=state.variation_id))
    assert {j.family: j.expected_weights for j in jobs(out)} == {"square": "sha256:aaaa", "landscape": None}


def test_retrying_a_failed_family_redraws_only_it_and_completes_the_variation() -> None:
    # square completes, landscape fails -> partial
    state, out = run(None, create(families=("square", "landscape")))
    square, landscape = jobs(out)
    state, _ = run(state, completed(square))
    state, out = run(state, failed(landscape))
    assert [type(e).__name__ for e in out] == ["VariationPartial"]
    partial_id = out[0].event_id
    # retry the landscape: one new job, its next attempt, and nothing for the square
    retry = m.RetryFamily(command_id=uuid.uuid4(), variation_id=state.variation_id, family="landscape")
    state, out = run(state, retry)
    requested, job = out
    assert isinstance(requested, m.FamilyRetryRequested) and (requested.family, requested.attempt) == ("landscape", 2)
    assert isinstance(job, m.GenerateFamily) and (job.family, job.round, job.attempt) == ("landscape", 1, 2)
    assert job.job_id != landscape.job_id and state.status == "generating"
    # a late outcome of the first attempt counts for nothing; the retry's success completes the variation
    state, out = run(state, completed(landscape))
    assert out == []
    state, out = run(state, completed(job))
    assert [type(e).__name__ for e in out] == ["VariationCompleted"]
    assert out[0].event_id != partial_id  # a new conclusion, not a redelivered one
    assert state.status == "completed" and set(state.outcomes) == {"square", "landscape"}


def test_only_a_failed_family_of_a_concluded_variation_is_retried() -> None:
    state, out = run(None, create(families=("square", "landscape")))
    square, landscape = jobs(out)
    state, _ = run(state, completed(square))
    retry = m.RetryFamily(command_id=uuid.uuid4(), variation_id=state.variation_id, family="landscape")
    assert run(state, retry)[1] == []  # still generating
    state, _ = run(state, completed(landscape))
    retry = m.RetryFamily(command_id=uuid.uuid4(), variation_id=state.variation_id, family="square")
    assert run(state, retry)[1] == []  # completed: nothing to retry


def test_cancelling_a_round_being_drawn_keeps_what_was_drawn_and_ignores_later_outcomes() -> None:
    state, out = run(None, create(families=("square", "landscape", "facebook-og")))
    square, landscape, _ = jobs(out)
    state, _ = run(state, completed(square))
    cancel = m.CancelVariation(command_id=uuid.uuid4(), variation_id=state.variation_id)
    state, out = run(state, cancel)
    (cancelled,) = out
    assert isinstance(cancelled, m.VariationCancelled) and cancelled.families == ("landscape", "facebook-og")
    assert state.status == "cancelled" and cancelled.round == 1
    assert run(state, cancel) == (state, [])  # redelivered: nothing more
    # a worker that drew the landscape before it heard of the cancellation: nothing concludes
    state, out = run(state, completed(landscape))
    assert out == [] and state.status == "cancelled" and "landscape" not in state.outcomes
    (public,) = domain.public_events(state, cancelled)
    assert isinstance(public, domain_events.ImageVariationCancelled) and public.public_urls == {
        "square": "http://x/square"
    }
    # a cancelled variation is not cancelled again, but can be drawn anew
    assert run(state, m.CancelVariation(command_id=uuid.uuid4(), variation_id=state.variation_id))[1] == []
    state, out = run(state, m.RegenerateVariation(command_id=uuid.uuid4(), variation_id=state.variation_id))
    assert state.status == "generating" and len(jobs(out)) == 3 and {j.round for j in jobs(out)} == {2}


def test_a_concluded_variation_is_not_cancelled() -> None:
    state, out = run(None, create(families=("square",)))
    state, _ = run(state, completed(jobs(out)[0]))
    assert state.status == "completed"
    assert run(state, m.CancelVariation(command_id=uuid.uuid4(), variation_id=state.variation_id))[1] == []


def test_a_version_1_create_and_request_are_upcast_to_variations_outside_any_set() -> None:
    cmd = create()
    _, out = run(None, cmd)
    for message, decode in ((cmd, codec.decode_command), (out[0], codec.decode_event)):
        v1 = json.loads(codec.encode(message))
        assert v1["version"] == 2 and v1["variant_set"] is None
        v1["version"] = 1
        del v1["variant_set"], v1["variant"]
        assert decode(json.dumps(v1)) == message


def test_a_variant_of_a_set_is_requested_with_its_set_and_place() -> None:
    sibling = create(name="spring-sale-v2").model_copy(update={"variant_set": "spring-sale", "variant": 2})
    _, out = run(None, sibling)
    assert (out[0].variant_set, out[0].variant) == ("spring-sale", 2)
    with pytest.raises(ValueError, match="go together"):
        m.CreateVariation(**{**create().model_dump(), "variant_set": "spring-sale"})


def test_an_abandoned_family_is_not_retried_and_still_counts_as_failed() -> None:
    state, out = run(None, create(families=("square", "landscape", "facebook-og")))
    square, landscape, og = jobs(out)
    state, _ = run(state, completed(square))
    state, _ = run(state, failed(landscape))
    state, out = run(state, failed(og))
    assert state.status == "partial"
    abandon = m.AbandonFamily(command_id=uuid.uuid4(), variation_id=state.variation_id, family="landscape")
    state, out = run(state, abandon)
    assert [type(e).__name__ for e in out] == ["FamilyAbandoned"] and state.outcomes["landscape"].status == "abandoned"
    retry = m.RetryFamily(command_id=uuid.uuid4(), variation_id=state.variation_id, family="landscape")
    assert run(state, retry)[1] == []
    assert (
        run(state, m.AbandonFamily(command_id=uuid.uuid4(), variation_id=state.variation_id, family="square"))[1] == []
    )
    # the other failed family, retried and drawn: the variation stays partial, landscape has no image
    state, out = run(
        state, m.RetryFamily(command_id=uuid.uuid4(), variation_id=state.variation_id, family="facebook-og")
    )
    state, out = run(state, completed(jobs(out)[0]))
    assert isinstance(out[0], m.VariationPartial) and set(out[0].failed) == {"landscape"}


def test_a_step_announces_what_was_decided_and_a_counted_completion_once():
    # created: the start is announced
    state, send, announce = domain.step(None, create(families=("square", "landscape")), NOW)
    assert [type(p).__name__ for p in announce] == ["ImageVariationStarted"]
    square, landscape = jobs(send)
    # the square completes: its family is announced; delivered again, nothing is
    state, send, announce = domain.step(state, completed(square), NOW)
    assert send == [] and [p.family_name for p in announce] == ["square"]
    assert domain.step(state, completed(square), NOW).announce == []
    # the last family completes: it and the variation's conclusion are announced, in that order
    state, send, announce = domain.step(state, completed(landscape), NOW)
    assert [type(e).__name__ for e in send] == ["VariationCompleted"]
    assert [type(p).__name__ for p in announce] == ["ImageFamilyCompleted", "ImageVariationCompleted"]
