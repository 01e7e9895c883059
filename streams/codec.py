"""The wire: how imagegen's messages are written and read. JSON, one object a message, with its `type`
(the wire name, fixed forever) and `version`; old versions are upcast to the current one on reading,
so a log replayed from offset 0 reads as if written today. A message that cannot be read raises
`UndecodableMessage`, whose reason goes with it to the dead-letter topic."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from streams.domain_events import (
    DomainEvent,
    ImageFamilyCompleted,
    ImageSetWinnerChosen,
    ImageVariationCancelled,
    ImageVariationCompleted,
    ImageVariationFailed,
    ImageVariationPartial,
    ImageVariationStarted,
)
from streams.messages import (
    AbandonFamily,
    CancelVariation,
    ChooseWinner,
    Command,
    CreateVariation,
    Event,
    FamilyAbandoned,
    FamilyCancelled,
    FamilyCompleted,
    FamilyFailed,
    FamilyRetryRequested,
    FamilyStarted,
    GenerateFamily,
    Message,
    RegenerateVariation,
    RegenerationRequested,
    RetryFamily,
    VariantChosen,
    VariantConcluded,
    VariationCancelled,
    VariationCompleted,
    VariationFailed,
    VariationPartial,
    VariationRejected,
    VariationRequested,
)
from streams.operational import FamilyPreview, FamilyProgress, Progress, QueueControl, WorkerHeartbeat

# --- the wire -------------------------------------------------------------------------------------

AnyCommand = Annotated[
    CreateVariation | RegenerateVariation | RetryFamily | CancelVariation | AbandonFamily | ChooseWinner,
    Field(discriminator="type"),
]
AnyEvent = Annotated[
    VariationRequested
    | VariationRejected
    | RegenerationRequested
    | FamilyRetryRequested
    | FamilyStarted
    | FamilyCompleted
    | FamilyFailed
    | FamilyCancelled
    | VariationCompleted
    | VariationPartial
    | VariationFailed
    | VariationCancelled
    | FamilyAbandoned
    | VariantConcluded
    | VariantChosen,
    Field(discriminator="type"),
]
AnyDomainEvent = Annotated[
    ImageVariationStarted
    | ImageFamilyCompleted
    | ImageVariationCompleted
    | ImageVariationPartial
    | ImageVariationFailed
    | ImageVariationCancelled
    | ImageSetWinnerChosen,
    Field(discriminator="type"),
]

_commands: TypeAdapter[Command] = TypeAdapter(AnyCommand)
_events: TypeAdapter[Event] = TypeAdapter(AnyEvent)
_work: TypeAdapter[GenerateFamily] = TypeAdapter(GenerateFamily)
_domain: TypeAdapter[DomainEvent] = TypeAdapter(AnyDomainEvent)
_heartbeat: TypeAdapter[WorkerHeartbeat] = TypeAdapter(WorkerHeartbeat)
_control: TypeAdapter[QueueControl | VariationCancelled] = TypeAdapter(
    Annotated[QueueControl | VariationCancelled, Field(discriminator="type")]
)
_progress: TypeAdapter[Progress] = TypeAdapter(Annotated[Progress, Field(discriminator="type")])

WIRE_TYPE = re.compile(r"^[A-Za-z_]{1,64}$")

# --- versions -------------------------------------------------------------------------------------
# A message's shape never changes under its version. A new shape is a new version of the type, and
# readers upcast older versions step by step to the current one, so a log replayed from offset 0
# reads as if it had been written today.

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _family_completed_v1(data: dict[str, Any]) -> dict[str, Any]:
    # Version 1 cut every derivative with libvips' entropy smartcrop at the cover scale; it did not
    # record that, nor the scale, which its crop box gives.
    derivatives = []
    for d in data.get("derivatives", []):
        if d.get("crop"):
            d = {**d, "crop_reason": "entropy", "scale": round(d["width"] / d["crop"][2], 4)}
        derivatives.append(d)
    return {**data, "derivatives": derivatives, "version": 2}


def _image_family_completed_v1(data: dict[str, Any]) -> dict[str, Any]:
    # Version 1 gave the URLs only.
    urls = {data["familyName"]: data["publicUrl"], **data["derivativeUrls"]}
    return {**data, "images": {name: {"url": url} for name, url in urls.items()}, "version": 2}


def _no_variant_set(data: dict[str, Any]) -> dict[str, Any]:
    # Version 1 had no variant sets: every variation stood alone.
    return {**data, "variant_set": None, "variant": None, "version": 2}


def _no_device_memory(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "device_memory_total_bytes": None, "device_memory_allocated_bytes": None, "version": 2}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("WorkerHeartbeat", 1): _no_device_memory,
    ("FamilyCompleted", 1): _family_completed_v1,
    ("IMAGE_FAMILY_COMPLETED", 1): _image_family_completed_v1,
    ("CreateVariation", 1): _no_variant_set,
    ("VariationRequested", 1): _no_variant_set,
}


def members(union: Any) -> tuple[type[BaseModel], ...]:
    """The message classes of one of the unions above, in order."""
    return typing.get_args(typing.get_args(union)[0])


def wire_name(model: type[BaseModel]) -> str:
    return str(model.model_fields["type"].default)


MODELS: tuple[type[BaseModel], ...] = (
    *members(AnyCommand),
    *members(AnyEvent),
    *members(AnyDomainEvent),
    GenerateFamily,
    WorkerHeartbeat,
    FamilyProgress,
    FamilyPreview,
    QueueControl,
)
# the current version of each type, as its class declares it
VERSIONS: dict[str, int] = {wire_name(model): int(model.model_fields["version"].default) for model in MODELS}


def upcast(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a decoded message with a valid type and version) at its type's current version."""
    kind = data["type"]
    while (version := data.get("version", 1)) < VERSIONS.get(kind, 1):
        data = UPCASTERS[(kind, version)](data)
    return data


class UndecodableMessage(ValueError):
    """A message no reader can decode; it goes to the dead-letter topic with this reason."""


def encode(message: Message | DomainEvent) -> bytes:
    if isinstance(message, DomainEvent):
        return message.model_dump_json(by_alias=True).encode()
    return message.model_dump_json().encode()


def _load(raw: bytes | str | None) -> dict[str, Any]:
    if raw is None:
        raise UndecodableMessage("empty message value")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UndecodableMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UndecodableMessage("not a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or not WIRE_TYPE.match(kind):
        raise UndecodableMessage("missing or invalid 'type'")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1 or version > VERSIONS.get(kind, 1):
        raise UndecodableMessage(f"{kind}: unsupported version {version!r}")
    try:
        return upcast(data)
    except (KeyError, TypeError, IndexError, ZeroDivisionError) as exc:
        raise UndecodableMessage(f"{kind}: version {version} cannot be upcast: {exc!r}") from None


def _validate(adapter: TypeAdapter[Any], data: dict[str, Any]) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UndecodableMessage(f"{data.get('type')}: {where}: {first['msg']}") from None


def _decode(adapter: TypeAdapter[Any], raw: bytes | str | None) -> Any:
    # The fast path parses and validates in one pass (pydantic-core); a message it refuses, an old
    # version included (each type's version is a Literal), takes the slow path: upcast, or say why.
    if raw is not None:
        try:
            return adapter.validate_json(raw)
        except ValueError:  # pydantic's ValidationError included
            pass
    return _validate(adapter, _load(raw))


def decode_command(raw: bytes | str | None) -> Command:
    return _decode(_commands, raw)  # type: ignore[no-any-return]


def decode_event(raw: bytes | str | None) -> Event:
    return _decode(_events, raw)  # type: ignore[no-any-return]


def decode_work(raw: bytes | str | None) -> GenerateFamily:
    return _decode(_work, raw)  # type: ignore[no-any-return]


def decode_heartbeat(raw: bytes | str | None) -> WorkerHeartbeat:
    return _decode(_heartbeat, raw)  # type: ignore[no-any-return]


def decode_control(raw: bytes | str | None) -> QueueControl | VariationCancelled:
    return _decode(_control, raw)  # type: ignore[no-any-return]


def decode_progress(raw: bytes | str | None) -> Progress:
    return _decode(_progress, raw)  # type: ignore[no-any-return]


def decode_domain_event(raw: bytes | str | None) -> DomainEvent:
    return _decode(_domain, raw)  # type: ignore[no-any-return]


COMMAND_TYPES = frozenset(wire_name(model) for model in members(AnyCommand))


def decode_any(raw: bytes | str | None) -> Message:
    """Commands and events share the variations agent's input."""
    data = _load(raw)
    kind = data["type"]
    if kind in COMMAND_TYPES:
        return _validate(_commands, data)  # type: ignore[no-any-return]
    return _validate(_events, data)  # type: ignore[no-any-return]
