"""The AsyncAPI 3 document of every topic imagegen reads or writes, made from the message models the
code uses, so the document cannot say what the code does not. `docs/asyncapi.json` is this document
for the default family table (`imagegen asyncapi --write` refreshes it; a test fails when they differ),
and the API serves it at /api/images/asyncapi.json.
"""

from __future__ import annotations

import inspect
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from streams import codec, domain_events, operational, topics
from streams import messages as m
from streams.families import FamilyTable

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"
KEY = {"type": "string", "format": "uuid", "description": "the variation id: one variation's messages stay in order"}
SET_KEY = {"type": "string", "format": "uuid", "description": "the set id: one variant set's choices stay in order"}

COMMANDS = codec.members(codec.AnyCommand)
EVENTS = codec.members(codec.AnyEvent)
DOMAIN_EVENTS = codec.members(codec.AnyDomainEvent)


# What a producer in any language needs to post a command, beside each command's schema and example.
IDENTITY = {
    "namespace": str(m.NAMESPACE),
    "variationId": "uuid5(namespace, name): RFC 4122 name-based (SHA-1) over the variation's name as UTF-8. "
    "The same name is always the same variation; a CreateVariation whose variation_id is not this is "
    "dead-lettered.",
    "commandId": "a UUID the producer makes for each command and sends again, unchanged, when it retries "
    "that command (a uuid4 kept with the request, or a uuid5 of the namespace and whatever identifies the "
    "command for the producer): events are identified from it, so a command delivered twice is applied once.",
    "setId": "uuid5(namespace, 'variant-set:' + name): a variant set's id (ChooseWinner's set_id).",
    "key": "the variation id as its 36-character lowercase text, UTF-8: every message of a variation lands on "
    "one partition, in order. A variant set's messages (ChooseWinner, VariantConcluded, VariantChosen, "
    "IMAGE_SET_WINNER_CHOSEN) are keyed by the set id instead.",
    "value": "the message as one JSON object, UTF-8, with its `type` and `version`; fields in snake_case.",
}


def _examples() -> dict[str, m.Command]:
    """One example of each command, made from the models (so each decodes as it is shown)."""
    name = "spring-sale"
    vid = m.variation_id(name)
    command = m.derive_id("example", name)  # a fixed id, so the document does not change from run to run
    generation = m.Generation(
        prompt="fresh flowers on a market stall", negative_prompt="text", seed=7, model="tiny", steps=4, guidance=5.0
    )
    return {
        "CreateVariation": m.CreateVariation(
            command_id=command,
            variation_id=vid,
            name=name,
            category="retail",
            families=("square", "landscape"),
            generation=generation,
        ),
        "RegenerateVariation": m.RegenerateVariation(command_id=command, variation_id=vid),
        "RetryFamily": m.RetryFamily(command_id=command, variation_id=vid, family="square"),
        "CancelVariation": m.CancelVariation(command_id=command, variation_id=vid),
        "AbandonFamily": m.AbandonFamily(command_id=command, variation_id=vid, family="square"),
        "ChooseWinner": m.ChooseWinner(
            command_id=command,
            variation_id=m.variation_id(f"{name}-v2"),
            set_id=m.set_id(name),
            set_name=name,
            variant=2,
            round=1,
            reason="CTR 4.1 % vs 3.2 %",
        ),
    }


def _type(model: type[BaseModel]) -> str:
    return str(model.model_fields["type"].default)


def _summary(model: type[BaseModel]) -> str:
    own = model.__dict__.get("__doc__")  # not an inherited one
    return inspect.cleandoc(own).split("\n\n")[0].replace("\n", " ") if own else ""


def _messages(models: tuple[type[BaseModel], ...]) -> dict[str, Any]:
    return {_type(model): {"$ref": f"#/components/messages/{_type(model)}"} for model in models}


def _channel(address: str, description: str, models: tuple[type[BaseModel], ...], **extra: Any) -> dict[str, Any]:
    return {"address": address, "description": description, "messages": _messages(models), **extra}


def _operation(action: str, channel: str, summary: str) -> dict[str, Any]:
    return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary}


def document(table: FamilyTable) -> dict[str, Any]:
    """The AsyncAPI 3.0 document for a deployment serving `table`'s families."""
    every = (
        *COMMANDS,
        *EVENTS,
        m.GenerateFamily,
        *DOMAIN_EVENTS,
        operational.WorkerHeartbeat,
        operational.FamilyProgress,
        operational.FamilyPreview,
        operational.QueueControl,
    )
    _, schemas = models_json_schema(
        [(model, "serialization") for model in every], ref_template="#/components/schemas/{model}"
    )
    keys = {
        operational.WorkerHeartbeat: {"type": "string", "description": "the worker's host:pid"},
        operational.QueueControl: {"type": "string", "description": "the family, or * for every family"},
        **{model: SET_KEY for model in (m.ChooseWinner, m.VariantConcluded, m.VariantChosen)},
        domain_events.ImageSetWinnerChosen: SET_KEY,
    }
    family = {"family": {"enum": list(table.names), "description": "an aspect family of the deployment's family table"}}
    messages = {
        _type(model): {
            "name": _type(model),
            "title": _type(model),
            "summary": _summary(model),
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
            "bindings": {"kafka": {"key": keys.get(model, KEY)}},
        }
        for model in every
    }
    for message in messages.values():
        if not message["summary"]:
            del message["summary"]
    for kind, example in _examples().items():
        payload = json.loads(codec.encode(example))
        summary = f"key: {example.key.decode()}"
        messages[kind]["examples"] = [{"name": f"{kind}-example", "summary": summary, "payload": payload}]
    channels = {
        "commands": _channel(topics.COMMANDS, "Commands any producer may post (imperative).", COMMANDS),
        "events": _channel(
            topics.EVENTS,
            "The event log (past tense): the source of truth every read model is rebuilt from. A type's "
            "shape never changes under its version; readers upcast older versions.",
            EVENTS,
        ),
        "familyWork": _channel(
            "imagegen.family.{family}",
            "One job per family of a variation, for that family's workers.",
            (m.GenerateFamily,),
            parameters=family,
        ),
        "familyPriorityWork": _channel(
            "imagegen.family.{family}.priority",
            "DX jobs (isDxJob), taken before any normal job.",
            (m.GenerateFamily,),
            parameters=family,
        ),
        "domainEvents": _channel(
            topics.DOMAIN_EVENTS,
            "The public contract other services build on (camelCase), one per step a user cares about.",
            DOMAIN_EVENTS,
        ),
        "progress": _channel(
            topics.PROGRESS,
            "Denoising steps of the jobs being drawn, and previews of the picture forming: ephemeral live "
            "status, not part of the log.",
            (operational.FamilyProgress, operational.FamilyPreview),
        ),
        "workers": _channel(
            topics.WORKERS, "Worker heartbeats: ephemeral, not part of the log.", (operational.WorkerHeartbeat,)
        ),
        "control": _channel(
            topics.CONTROL,
            "Queue pause and resume, and cancelled rounds: every worker reads it whole and holds what it says; "
            "the last word per family (or * for all) stands, and a cancelled round's jobs are let go.",
            (operational.QueueControl, m.VariationCancelled),
        ),
        "deadLetter": {
            "address": topics.DEAD_LETTER,
            "description": "Messages that could not be decoded or handled, as they came, with headers "
            "`reason`, `topic`, `partition` and `offset`. Their payload is whatever was sent.",
        },
    }
    operations = {
        "receiveCommands": _operation(
            "receive", "commands", "Create, regenerate, cancel a variation; retry a family; choose a set's winner."
        ),
        "sendEvents": _operation("send", "events", "Record what happened to each variation."),
        "sendFamilyWork": _operation("send", "familyWork", "Hand a family's job to its workers."),
        "receiveFamilyWork": _operation("receive", "familyWork", "Draw a master and cut its derivatives."),
        "sendFamilyPriorityWork": _operation("send", "familyPriorityWork", "Hand a DX job to its workers."),
        "receiveFamilyPriorityWork": _operation("receive", "familyPriorityWork", "Draw a DX job first."),
        "sendDomainEvents": _operation("send", "domainEvents", "Announce progress to other services."),
        "sendProgress": _operation("send", "progress", "Report each denoising step of a job."),
        "receiveProgress": _operation("receive", "progress", "Stream a variation's steps (the API's SSE)."),
        "sendHeartbeats": _operation("send", "workers", "Say a worker is alive and what it serves."),
        "sendDeadLetters": _operation("send", "deadLetter", "Set aside what could not be read."),
        "sendQueueControl": _operation("send", "control", "Hold or release a family's jobs (imagegen queue)."),
        "receiveQueueControl": _operation("receive", "control", "Hold paused families; let go of cancelled jobs."),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "imagegen",
            "version": metadata.version("imagegen"),
            "description": "Marketing images from Stable Diffusion XL, event-sourced on Kafka. Every message is "
            "JSON with a `type` (its wire name, fixed forever) and a `version`, keyed by the variation id "
            "(a variant set's by the set id). "
            "Any Kafka client may post commands: `x-identity` says how to make their ids and key, and each "
            "command has an example.",
            "x-identity": IDENTITY,
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": {"host": "localhost:9092", "protocol": "kafka", "description": "KAFKA_BOOTSTRAP_SERVERS"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas["$defs"]},
    }


def render(table: FamilyTable) -> str:
    return json.dumps(document(table), indent=2, sort_keys=True) + "\n"
