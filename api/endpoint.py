"""An endpoint of the HTTP API, declared once beside its handler: its path and methods, the handler, the
scope a key needs to call it, and what the OpenAPI document says of it. api/routes.py lists them all;
the Starlette routes, the access table, the OpenAPI paths and the names no variation may take are
derived from that list, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from api import responses as r
from api.problems import ProblemJson
from streams import limits

Handler = Callable[[Request], Awaitable[Response]]
Body = type[BaseModel] | tuple[type[BaseModel], ...]  # a tuple: any one of them

# What calling an endpoint needs: a key of one of api/access.py's scopes, nothing (OPEN), or, for an
# image file, nothing unless IMAGE_ACCESS=read (IMAGES).
OPEN, IMAGES = "open", "images"
READ, SUBMIT, ADMIN = "read", "submit", "admin"


@dataclass(frozen=True)
class Answer:
    description: str
    body: Body | None = ProblemJson  # JSON
    media: dict[str, dict[str, Any]] = field(default_factory=dict)  # other media types: their schema
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    methods: tuple[str, ...]  # HEAD beside GET: documented, with the GET's answers and no body
    path: str  # under the API's base, /api/images
    handler: Handler
    scope: str
    tag: str
    summary: str
    answers: dict[int, Answer]
    parameters: tuple[dict[str, Any], ...] = ()
    body: type[BaseModel] | None = None  # the JSON request body, as the handler validates it


def path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": description}


# The parameters and answers several endpoints share
UUID = {"type": "string", "format": "uuid"}
NAME = {"type": "string", "pattern": limits.NAME_PATTERN}
VARIATION_ID = path("id", UUID, "the variation's id: uuid5 of its name")
UNAVAILABLE = {503: Answer("the read model (or storage, or the command log) is unreachable", headers=("Retry-After",))}
BODY_ERRORS = {
    400: Answer("the body is not valid JSON"),
    415: Answer("the body is not sent as application/json"),
    422: Answer("the body is not valid (nor is a string holding a NUL, \\u0000): `errors` says per field why"),
}
NUL = Answer("a name holds a NUL (\\u0000), which no stored text can")
NOT_FOUND = Answer("no such variation (or not a UUID)")
ACCEPTED = Answer("the command is on the log", r.Accepted, headers=("Location",))
DOCUMENT = Answer("the document", None, {"application/json": {"schema": {"type": "object"}}})
PLAIN = {"text/plain": {"schema": {"type": "string"}}}
