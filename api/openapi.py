"""The OpenAPI 3.1 document of the HTTP API, served at /api/images/openapi.json. Request bodies are the
pydantic models the handlers validate with (api/schemas.py, webhooks/routes.py) and response bodies
those of api/responses.py, so the document cannot say what the code does not; the operations are a
table, one row per route of api/app.py (tests/unit/test_openapi.py holds them to the routing table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api import access
from api import responses as r
from api.families import FamilyList
from api.images import CONTENT_TYPES
from api.schemas import RESERVED_NAMES, CreateVariationBody
from inference import models
from streams import messages as m
from streams.families import FamilyTable
from webhooks.routes import EVENT_TYPES, SubscriptionBody

BASE = "/api/images"
REF = "#/components/schemas/{model}"
REQUESTS = (CreateVariationBody, SubscriptionBody)
UUID = {"type": "string", "format": "uuid"}
NAME = {"type": "string", "pattern": m.NAME_PATTERN}
HEADERS = {
    "Location": {"description": "where to follow what was accepted or made", "schema": {"type": "string"}},
    "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}},
    "ETag": {"schema": {"type": "string"}},
    "Last-Modified": {"schema": {"type": "string"}},
    "Cache-Control": {"schema": {"type": "string"}},
    "Content-Range": {"schema": {"type": "string"}},
}
Body = type[BaseModel] | tuple[type[BaseModel], ...]  # a tuple: any one of them


@dataclass(frozen=True)
class Answer:
    description: str
    body: Body | None = r.Problem  # JSON
    media: dict[str, dict[str, Any]] = field(default_factory=dict)  # other media types: their schema
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # under BASE, as api/app.py's routes name it
    id: str  # the handler
    tag: str
    summary: str
    answers: dict[int, Answer]
    parameters: tuple[dict[str, Any], ...] = ()
    body: type[BaseModel] | None = None


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": description}


# Every operation also answers these: authentication (401, 403), rate limits (429) and the body size
# limit (413) of api/access.py join here when it lands, so that every operation documents them at once.
EVERY: dict[int, Answer] = {}
# what api/access.py answers when API keys are configured (the body limit it enforces always)
ACCESS = {
    401: Answer("no key, or not a key this API knows (WWW-Authenticate: Bearer)"),
    403: Answer("the key's scope does not allow this call"),
    429: Answer("over the key's rate limit", headers=("Retry-After",)),
}
TOO_LARGE = Answer("the body is larger than MAX_BODY_BYTES")
UNAVAILABLE = {503: Answer("the read model (or storage, or the command log) is unreachable", headers=("Retry-After",))}
BODY_ERRORS = {
    400: Answer("the body is not valid JSON"),
    415: Answer("the body is not sent as application/json"),
    422: Answer("the body is not valid (nor is a string holding a NUL, \\u0000): `errors` says per field why"),
}
NUL = Answer("a name holds a NUL (\\u0000), which no stored text can")
VARIATION_ID = _path("id", UUID, "the variation's id: uuid5 of its name")
NOT_FOUND = Answer("no such variation (or not a UUID)")
ACCEPTED = Answer("the command is on the log", r.Accepted, headers=("Location",))
IMAGE_REQUEST = (
    _header("Range", "bytes=…: a part of the image (206)"),
    _header("If-Range", "the Range applies only while the image is this ETag or date"),
    _header("If-None-Match", "an ETag: 304 while the image is unchanged"),
    _header("If-Modified-Since", "an HTTP date: 304 while the image is unchanged"),
)
IMAGE = {ct: {"schema": {"type": "string", "contentMediaType": ct}} for ct in CONTENT_TYPES.values()}
PLAIN = {"text/plain": {"schema": {"type": "string"}}}


def _image(method: str) -> Operation:
    cached = ("ETag", "Last-Modified", "Cache-Control")
    answers = {
        200: Answer("the image", None, IMAGE, cached),
        206: Answer("the requested part", None, IMAGE | {"multipart/byteranges": {}}, (*cached, "Content-Range")),
        304: Answer("not modified since the ETag or date given", None, {}, cached),
        307: Answer("IMAGE_SERVING=redirect: a presigned URL of the S3 object", None, {}, ("Location",)),
        400: Answer("a malformed Range header", None, PLAIN),
        404: Answer("no such image"),
        422: NUL,
        416: Answer("the Range is outside the image", None, PLAIN, ("Content-Range",)),
        **UNAVAILABLE,
    }
    if method == "HEAD":  # the GET answer's status and headers, and no body
        answers = {status: Answer(a.description, None, {}, a.headers) for status, a in answers.items()}
    variation = _path("variation", NAME, "the variation's name")
    name = _path("name", {"type": "string", "minLength": 1}, "a family (its master) or a derivative")
    summary = "A family master or a derivative"
    return Operation(
        method, "/{variation}/{name}", "serve_image", "images", summary, answers, (variation, name, *IMAGE_REQUEST)
    )


OPERATIONS = (
    Operation(
        "POST",
        "/variations",
        "create_variation",
        "variations",
        "Create a variation (or a variant set)",
        {
            202: Answer(
                "the command is on the log (variants > 1: one per variation of the set)",
                (r.Accepted, r.SetAccepted),
                headers=("Location",),
            ),
            **BODY_ERRORS,
            409: Answer("the name is taken by another request's variation"),
            **UNAVAILABLE,
        },
        body=CreateVariationBody,
    ),
    Operation(
        "GET",
        "/variations",
        "list_variations",
        "variations",
        "Variations, newest first",
        {
            200: Answer("a page of them", r.VariationPage),
            422: Answer("limit or offset out of range, or a filter holds a NUL (\\u0000)"),
            **UNAVAILABLE,
        },
        (
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 20}, "page size"),
            _query("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0}, "skipped"),
            _query("status", {"type": "string", "enum": list(get_args(r.VariationStatus))}, "only in this status"),
            _query("category", {"type": "string"}, "only of this category"),
            _query("q", {"type": "string"}, "in the name or the category"),
            _query("set", {"type": "string"}, "only of this variant set"),
        ),
    ),
    Operation(
        "GET",
        "/variations/name/{name}",
        "get_variation_by_name",
        "variations",
        "A variation by name",
        {
            200: Answer("the variation with its families and derivatives", r.VariationDetail),
            404: Answer("no variation of that name"),
            422: NUL,
            **UNAVAILABLE,
        },
        (_path("name", NAME, "the variation's name"),),
    ),
    Operation(
        "GET",
        "/variations/{id}",
        "get_variation",
        "variations",
        "A variation",
        {
            200: Answer("the variation with its families and derivatives", r.VariationDetail),
            404: NOT_FOUND,
            **UNAVAILABLE,
        },
        (VARIATION_ID,),
    ),
    Operation(
        "POST",
        "/variations/{id}/regenerate",
        "regenerate_variation",
        "variations",
        "Draw every family again (a new round, a new seed)",
        {
            202: ACCEPTED,
            404: NOT_FOUND,
            **UNAVAILABLE,
        },
        (VARIATION_ID,),
    ),
    Operation(
        "POST",
        "/variations/{id}/families/{family}/retry",
        "retry_family",
        "variations",
        "Draw one failed family again",
        {
            202: ACCEPTED,
            404: Answer("no such variation, or it has no such family"),
            409: Answer("the family has not failed"),
            **UNAVAILABLE,
        },
        (VARIATION_ID, _path("family", {"type": "string"}, "one of the variation's families")),
    ),
    Operation(
        "POST",
        "/variations/{id}/cancel",
        "cancel_variation",
        "variations",
        "Stop the round being drawn",
        {
            202: ACCEPTED,
            404: NOT_FOUND,
            409: Answer("the variation is not being drawn"),
            **UNAVAILABLE,
        },
        (VARIATION_ID,),
    ),
    Operation(
        "GET",
        "/variations/{id}/live",
        "follow_variation",
        "variations",
        "Server-sent events: a snapshot, then every event and denoising step",
        {
            200: Answer(
                "`snapshot`, then one event per message, named by its type",
                None,
                {"text/event-stream": {"schema": {"type": "string"}}},
            ),
            404: Answer("not a UUID"),
            **UNAVAILABLE,
        },
        (VARIATION_ID,),
    ),
    Operation(
        "GET",
        "/sets/{name}",
        "get_variant_set",
        "variations",
        "A variant set (an A/B test)",
        {
            200: Answer("its variations, in their order", r.VariantSet),
            404: Answer("no such set"),
            422: NUL,
            **UNAVAILABLE,
        },
        (_path("name", NAME, "the set's name"),),
    ),
    Operation(
        "POST",
        "/sets/{name}/regenerate",
        "regenerate_variant_set",
        "variations",
        "Draw every variation of the set again",
        {
            202: Answer("one command per variation is on the log", r.SetAccepted),
            404: Answer("no such set"),
            422: NUL,
            **UNAVAILABLE,
        },
        (_path("name", NAME, "the set's name"),),
    ),
    Operation(
        "GET",
        "/commands/{id}",
        "get_command",
        "variations",
        "What became of a create command",
        {
            200: Answer("accepted, rejected (and why), or still pending", (r.DecidedCommand, r.PendingCommand)),
            404: Answer("not a UUID"),
            **UNAVAILABLE,
        },
        (_path("id", UUID, "the commandId the POST answered"),),
    ),
    Operation(
        "GET",
        "/health/ml",
        "health_ml",
        "operations",
        "Per family: is a live worker serving it",
        {
            200: Answer("degraded when some family has no live worker", r.MlHealth),
            **UNAVAILABLE,
        },
    ),
    Operation(
        "GET",
        "/health",
        "health",
        "operations",
        "The API and its read model answer",
        {
            200: Answer("ok", r.Health),
            **UNAVAILABLE,
        },
    ),
    Operation(
        "GET",
        "/models",
        "list_models",
        "operations",
        "The model registry",
        {
            200: Answer("each model, and which live workers have it loaded", r.ModelList),
            **UNAVAILABLE,
        },
    ),
    Operation(
        "GET",
        "/families",
        "list_families",
        "operations",
        "The family table: sizes and safe zones",
        {
            200: Answer("each family's ratio and master, its derivatives' sizes and safe zones", FamilyList),
        },
    ),
    Operation(
        "GET",
        "/asyncapi.json",
        "asyncapi",
        "operations",
        "The AsyncAPI 3 document of every topic",
        {
            200: Answer("the document", None, {"application/json": {"schema": {"type": "object"}}}),
        },
    ),
    Operation(
        "GET",
        "/openapi.json",
        "openapi_document",
        "operations",
        "This document",
        {
            200: Answer("the document", None, {"application/json": {"schema": {"type": "object"}}}),
        },
    ),
    Operation(
        "GET",
        "/metrics",
        "metrics",
        "operations",
        "Prometheus series",
        {
            200: Answer("the text exposition format", None, PLAIN),
            **UNAVAILABLE,
        },
    ),
    Operation(
        "POST",
        "/webhooks",
        "create_webhook",
        "webhooks",
        "Subscribe to the domain events",
        {
            201: Answer(
                "the subscription (with its secret when none was sent)",
                (r.NewWebhook, r.Webhook),
                headers=("Location",),
            ),
            **BODY_ERRORS,
            **UNAVAILABLE,
        },
        body=SubscriptionBody,
    ),
    Operation(
        "GET",
        "/webhooks",
        "list_webhooks",
        "webhooks",
        "Every subscription",
        {
            200: Answer("oldest first", r.WebhookList),
            **UNAVAILABLE,
        },
    ),
    Operation(
        "GET",
        "/webhooks/{id}",
        "get_webhook",
        "webhooks",
        "A subscription",
        {
            200: Answer("the subscription", r.Webhook),
            404: Answer("no such webhook (or not a UUID)"),
            **UNAVAILABLE,
        },
        (_path("id", UUID, "the subscription's id"),),
    ),
    Operation(
        "DELETE",
        "/webhooks/{id}",
        "delete_webhook",
        "webhooks",
        "Unsubscribe (with its delivery log)",
        {
            204: Answer("deleted", None),
            404: Answer("no such webhook (or not a UUID)"),
            **UNAVAILABLE,
        },
        (_path("id", UUID, "the subscription's id"),),
    ),
    Operation(
        "GET",
        "/webhooks/{id}/deliveries",
        "list_deliveries",
        "webhooks",
        "The delivery log, newest first",
        {
            200: Answer("each delivery with every attempt", r.DeliveryPage),
            404: Answer("no such webhook (or not a UUID)"),
            422: Answer("limit out of range"),
            **UNAVAILABLE,
        },
        (
            _path("id", UUID, "the subscription's id"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "at most this many"),
        ),
    ),
    _image("GET"),
    _image("HEAD"),
)
RESPONSES = tuple(
    dict.fromkeys(
        model
        for op in OPERATIONS
        for answer in op.answers.values()
        for model in (answer.body if isinstance(answer.body, tuple) else (answer.body,))
        if model is not None
    )
)


def _validated(schemas: dict[str, Any], table: FamilyTable) -> None:
    """What the bodies' validators check beyond their models' own schemas, said where JSON schema can
    say it (known families, models and event types; no reserved name), so a client can send a valid body."""
    create = schemas["CreateVariationBody"]["properties"]
    create["name"]["not"] = {"enum": sorted(RESERVED_NAMES)}
    create["families"] |= {"items": {"type": "string", "enum": list(table.names)}, "uniqueItems": True}
    create["focalPoints"]["propertyNames"] = {"enum": list(table.names)}
    (model, _) = schemas["GenerationBody"]["properties"]["model"]["anyOf"]
    model["enum"] = sorted(models.REGISTRY)
    schemas["SubscriptionBody"]["properties"]["events"]["items"]["enum"] = list(EVENT_TYPES)


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(op: Operation, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    def schema(body: Body) -> dict[str, Any]:
        if isinstance(body, tuple):
            return {"anyOf": [refs[(model, "serialization")] for model in body]}
        return refs[(body, "serialization")]

    needs = access.scope_of(op.id, op.method)
    guarded = needs != access.OPEN
    answers: dict[str, Any] = {}
    limits = (ACCESS | ({413: TOO_LARGE} if op.body else {})) if guarded else {}
    for status, answer in sorted((op.answers | EVERY | limits).items()):
        out: dict[str, Any] = {"description": answer.description}
        content = (_content(schema(answer.body)) if answer.body else {}) | answer.media
        if content:
            out["content"] = content
        if answer.headers:
            out["headers"] = {name: HEADERS[name] for name in answer.headers}
        answers[str(status)] = out
    # operationIds are unique in a document: a HEAD served by its GET's handler is named apart
    operation_id = f"{op.id}_head" if op.method == "HEAD" else op.id
    out = {"operationId": operation_id, "tags": [op.tag], "summary": op.summary, "responses": answers}
    if guarded:  # a key when keys are configured (`{}`: none needed where none are)
        scope = "read (or a key of any scope) when IMAGE_ACCESS=read" if needs == access.IMAGES else needs
        out["security"] = [{"bearer": []}, {"apiKey": []}, {}]
        out["description"] = f"Needs a key of scope {scope} when API keys are configured."
    else:
        out["security"] = [{}]
    if op.parameters:
        out["parameters"] = list(op.parameters)
    if op.body:
        out["requestBody"] = {"required": True, "content": _content(refs[(op.body, "validation")])}
    return out


def document(table: FamilyTable) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a deployment serving `table`'s families."""
    refs, schemas = models_json_schema(
        [(model, "validation") for model in REQUESTS] + [(model, "serialization") for model in RESPONSES],
        by_alias=True,
        ref_template=REF,
    )
    _validated(schemas["$defs"], table)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(BASE + op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "imagegen",
            "version": metadata.version("imagegen"),
            "description": "Marketing images from Stable Diffusion XL. Commands are accepted with 202 and "
            "decided on the event log; reads come from the read model. Every error is a problem JSON, but for an "
            "image's Range errors (400, 416), which are plain text.",
        },
        "tags": [
            {"name": "variations", "description": "Create, read, regenerate and cancel variations"},
            {"name": "images", "description": "The images themselves"},
            {"name": "webhooks", "description": "Domain events posted to subscribers"},
            {"name": "operations", "description": "Health, models, metrics and the documents"},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key (imagegen keys new)"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the same key"},
            },
        },
    }
