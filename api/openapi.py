"""The OpenAPI 3.1 document of the HTTP API, served at /api/images/openapi.json, derived from the endpoints
api/routes.py lists: request bodies are the pydantic models the handlers validate with (api/schemas.py,
webhooks/routes.py) and response bodies those of api/responses.py, so the document cannot say what the
code does not."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from pydantic.json_schema import models_json_schema

from api import endpoint as e
from api.endpoint import Answer, Body, Endpoint
from api.routes import BASE, ENDPOINTS, RESERVED_NAMES
from inference import models
from streams.families import FamilyTable
from webhooks.routes import EVENT_TYPES

REF = "#/components/schemas/{model}"
HEADERS = {
    "Location": {"description": "where to follow what was accepted or made", "schema": {"type": "string"}},
    "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}},
    "ETag": {"schema": {"type": "string"}},
    "Last-Modified": {"schema": {"type": "string"}},
    "Cache-Control": {"schema": {"type": "string"}},
    "Content-Range": {"schema": {"type": "string"}},
    "Content-Location": {"description": "the winning variant's own URL of the image", "schema": {"type": "string"}},
    "X-Variant": {"description": "the winning variant's place in its set", "schema": {"type": "integer"}},
}
# what api/access.py answers when API keys are configured (the body limit it enforces always)
ACCESS = {
    401: Answer(
        "no key, not a key this API knows (WWW-Authenticate: Bearer), or a session cookie forged, altered or ended"
    ),
    403: Answer(
        "the key's scope does not allow this call, or a change made with a session cookie lacks its X-CSRF-Token"
    ),
    429: Answer("over the key's rate limit", headers=("Retry-After",)),
}
TOO_LARGE = Answer("the body is larger than MAX_BODY_BYTES")
REQUESTS = tuple(dict.fromkeys(endpoint.body for endpoint in ENDPOINTS if endpoint.body is not None))
RESPONSES = tuple(
    dict.fromkeys(
        model
        for endpoint in ENDPOINTS
        for answer in endpoint.answers.values()
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


def _operation(endpoint: Endpoint, method: str, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    def schema(body: Body) -> dict[str, Any]:
        if isinstance(body, tuple):
            return {"anyOf": [refs[(model, "serialization")] for model in body]}
        return refs[(body, "serialization")]

    needs = endpoint.scope
    guarded = needs != e.OPEN
    answers: dict[str, Any] = {}
    limits = (ACCESS | ({413: TOO_LARGE} if endpoint.body else {})) if guarded else {}
    own = endpoint.answers
    if method == "HEAD":  # the GET answer's status and headers, and no body
        own = {status: Answer(a.description, None, {}, a.headers) for status, a in own.items()}
    for status, answer in sorted((own | limits).items()):
        out: dict[str, Any] = {"description": answer.description}
        content = (_content(schema(answer.body)) if answer.body else {}) | answer.media
        if content:
            out["content"] = content
        if answer.headers:
            out["headers"] = {name: HEADERS[name] for name in answer.headers}
        answers[str(status)] = out
    # operationIds are unique in a document: a HEAD served by its GET's handler is named apart
    operation_id = endpoint.handler.__name__ + ("_head" if method == "HEAD" else "")
    out = {"operationId": operation_id, "tags": [endpoint.tag], "summary": endpoint.summary, "responses": answers}
    if guarded:  # a key when keys are configured (`{}`: none needed where none are)
        scope = "read (or a key of any scope) when IMAGE_ACCESS=read" if needs == e.IMAGES else needs
        out["security"] = [{"bearer": []}, {"apiKey": []}, {"session": []}, {}]
        out["description"] = f"Needs a key of scope {scope} when API keys are configured."
    else:
        out["security"] = [{}]
    if endpoint.parameters:
        out["parameters"] = list(endpoint.parameters)
    if endpoint.body:
        out["requestBody"] = {"required": True, "content": _content(refs[(endpoint.body, "validation")])}
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
    for endpoint in ENDPOINTS:
        for method in endpoint.methods:
            paths.setdefault(BASE + endpoint.path, {})[method.lower()] = _operation(endpoint, method, refs)
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
            {"name": "access", "description": "Signing in to the gallery: a session cookie for a key"},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key (imagegen keys new)"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the same key"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "imagegen_session",
                    "description": "POST /api/images/session's cookie; changes need its csrfToken as X-CSRF-Token",
                },
            },
        },
    }
