"""The public contract: docs/asyncapi.json is what the code says, and what the code sends fits it."""

from __future__ import annotations

import json
import typing
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streams import codec, contract, domain, domain_events, families, operational
from streams import messages as m
from tests.builders import create_variation, generation

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DOC = json.loads(contract.DOCUMENT.read_text())
SPECS = Path(__file__).resolve().parents[2] / ".cache/asyncapi/node_modules/@asyncapi/specs/schemas"
ASYNCAPI_SCHEMA = SPECS / "3.0.0-without-$id.json"


def test_the_document_in_the_repository_is_the_one_the_code_makes() -> None:
    assert contract.DOCUMENT.read_text() == contract.render(families.load()), "run `imagegen asyncapi --write`"


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(ref: str) -> Any:
    node: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_the_document_is_valid_asyncapi_3_by_the_specification_s_own_schema() -> None:
    # the JSON Schema the AsyncAPI initiative publishes (@asyncapi/specs, installed by `make install` with npm)
    if not ASYNCAPI_SCHEMA.is_file():
        pytest.skip(f"{ASYNCAPI_SCHEMA} is missing: make install fetches it with npm")
    validator = jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text()))
    assert [e.message for e in validator.iter_errors(DOC)] == []
    publish = {
        **DOC,
        "operations": {**DOC["operations"], "sendEvents": {**DOC["operations"]["sendEvents"], "action": "publish"}},
    }  # AsyncAPI 2's word
    assert list(validator.iter_errors(publish))


def test_every_reference_resolves_and_every_message_type_has_a_channel() -> None:
    assert DOC["asyncapi"] == "3.0.0"
    for ref in refs(DOC):
        resolve(ref)  # a KeyError names a dangling reference
    carried = {name for channel in DOC["channels"].values() for name in channel.get("messages", {})}
    for union in (codec.AnyCommand, codec.AnyEvent, codec.AnyDomainEvent):
        for model in typing.get_args(typing.get_args(union)[0]):
            assert model.model_fields["type"].default in carried, model.__name__
    assert {"GenerateFamily", "WorkerHeartbeat"} <= carried
    assert DOC["channels"]["familyWork"]["parameters"]["family"]["enum"] == list(families.load().names)


def validate(message: m.Message | domain_events.DomainEvent) -> None:
    """`message`, as it goes on the wire, against the document's schema for its type."""
    wire = json.loads(codec.encode(message))
    payload = DOC["components"]["messages"][wire["type"]]["payload"]
    jsonschema.Draft202012Validator({**payload, "components": DOC["components"]}).validate(wire)


def test_what_a_variation_s_life_sends_fits_the_document() -> None:
    create = create_variation(
        "spring-sale",
        families=("square", "landscape"),
        focal_points={"square": m.FocalPoint(x=0.2, y=0.3)},
        generation=generation("flowers", 1, guidance=5.0),
    )
    state, sent = domain.handle(None, create, NOW)
    jobs = [s for s in sent if isinstance(s, m.GenerateFamily)]
    image = m.StoredImage(
        name="og-square",
        key="k",
        url="http://x",
        width=1200,
        height=1200,
        bytes=9,
        crop=(0, 0, 1024, 1024),
        crop_reason="face",
        crop_clear=True,
        scale=1.1719,
    )
    outcomes = [
        m.FamilyCompleted(
            event_id=uuid.uuid4(),
            variation_id=jobs[0].variation_id,
            occurred_at=NOW,
            job_id=jobs[0].job_id,
            family="square",
            round=1,
            attempt=1,
            master=image,
            derivatives=(image,),
            model="tiny",
            seed=1,
            duration_s=1.0,
            subject=(1, 2, 3, 4),
            subject_reason="face",
        ),
        m.FamilyFailed(
            event_id=uuid.uuid4(),
            variation_id=jobs[1].variation_id,
            occurred_at=NOW,
            job_id=jobs[1].job_id,
            family="landscape",
            round=1,
            attempt=1,
            error_kind="OutOfMemoryError",
            message="CUDA out of memory",
            retryable=True,
        ),
    ]
    messages: list[m.Message | domain_events.DomainEvent] = [create, *sent]
    for outcome in outcomes:
        before = state
        state, more = domain.handle(state, outcome, NOW)
        messages += [outcome, *more]
        messages += [p for e in [outcome, *more] for p in domain.public_events(state or before, e)]
    types = {json.loads(codec.encode(x))["type"] for x in messages}
    assert {"VariationRequested", "GenerateFamily", "FamilyCompleted", "VariationPartial"} <= types
    assert {"IMAGE_FAMILY_COMPLETED", "IMAGE_VARIATION_PARTIAL"} <= types
    for message in messages:
        validate(message)


def test_what_a_cancellation_and_its_live_status_send_fits_the_document() -> None:
    create = create_variation(
        "winter-sale", families=("hero",), generation=generation("snow", 1, steps=30, guidance=5.0)
    )
    state, sent = domain.handle(None, create, NOW)
    (job,) = [s for s in sent if isinstance(s, m.GenerateFamily)]
    cancel = m.CancelVariation(command_id=uuid.uuid4(), variation_id=job.variation_id)
    state, more = domain.handle(state, cancel, NOW)
    progress = operational.FamilyProgress(
        variation_id=job.variation_id,
        job_id=job.job_id,
        family="hero",
        round=1,
        attempt=1,
        step=7,
        steps=30,
        sent_at=NOW,
    )
    stopped = m.FamilyCancelled(
        event_id=uuid.uuid4(),
        variation_id=job.variation_id,
        occurred_at=NOW,
        job_id=job.job_id,
        family="hero",
        round=1,
        attempt=1,
        at_step=8,
        steps=30,
    )
    preview = operational.FamilyPreview(
        **progress.model_dump(exclude={"type", "version"}), width=256, height=110, image="UklGRg=="
    )
    public = [p for e in more for p in domain.public_events(state, e)]
    messages = [cancel, *more, *public, progress, preview, stopped]
    assert [json.loads(codec.encode(x))["type"] for x in messages] == [
        "CancelVariation",
        "VariationCancelled",
        "IMAGE_VARIATION_CANCELLED",
        "FamilyProgress",
        "FamilyPreview",
        "FamilyCancelled",
    ]
    assert codec.decode_progress(codec.encode(preview)) == preview
    for message in messages:
        validate(message)


def test_a_message_that_breaks_the_contract_is_caught() -> None:
    wire = {"type": "IMAGE_VARIATION_FAILED", "version": 1, "id": str(uuid.uuid4())}  # no time, no ids
    payload = DOC["components"]["messages"]["IMAGE_VARIATION_FAILED"]["payload"]
    with pytest.raises(jsonschema.ValidationError, match="required"):
        jsonschema.Draft202012Validator({**payload, "components": DOC["components"]}).validate(wire)
