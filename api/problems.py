"""Errors and input at the HTTP edge: the one error type every route raises, with its JSON (the shape
the OpenAPI document gives every error), the JSON body, query and path values, and pydantic's field
errors. A leaf: the handlers, the app and the access middleware import it; it imports none of them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.responses import Shape

B = TypeVar("B", bound=BaseModel)

Errors = list[dict[str, str]]  # per field: {"field": "generation.seed", "message": "…"}
RETRY_LATER = {"Retry-After": "5"}


class FieldError(Shape):
    field: str = Field(description="dotted path of the bad value (`generation.seed`), or `body`, `content-type`")
    message: str


class ProblemJson(Shape):
    """Every error: its status again, what went wrong, and per field what was wrong with it."""

    # the shape of `Problem`, and named so in the OpenAPI document (its schema's key and title)
    __qualname__ = "Problem"
    model_config = ConfigDict(title="Problem")

    status: int
    message: str
    errors: list[FieldError] = Field(default=[], description="absent when no one field is to blame")


class Problem(Exception):
    """An error answer, raised by whichever handler finds it; the app answers it as its JSON."""

    def __init__(
        self, status: int, message: str, errors: Errors | None = None, *, headers: Mapping[str, str] | None = None
    ):
        super().__init__(status, message)
        self.body = ProblemJson.model_validate({"status": status, "message": message, "errors": errors or []})
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        return self.body.status

    def response(self) -> JSONResponse:
        content = self.body.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return JSONResponse(content, status_code=self.status, headers=self.headers or None)


def problem(
    status: int, message: str, errors: Errors | None = None, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The answer of a problem not raised (the middleware's, the app's handlers of other exceptions)."""
    return Problem(status, message, errors, headers=headers).response()


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()]


def validated(model: type[B], data: Any, context: Any = None) -> B:
    """`data` as `model`, or a 422 naming each field that is not valid."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        errors = field_errors(exc)
        raise Problem(422, "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors) from None


async def json_body(request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise Problem(415, "send the body as application/json", [{"field": "content-type", "message": "unsupported"}])
    try:
        body = json.loads(await request.body())
        nul = nul_at(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than Python's stack
        raise Problem(400, f"body is not valid JSON: {exc}", [{"field": "body", "message": "invalid JSON"}]) from None
    if nul is not None:
        raise holds_nul(nul)
    return body


def holds_nul(field: str) -> Problem:
    # Postgres text cannot hold a NUL: refused here, naming the field, not by psycopg with a 500 (or, for a
    # prompt, by the projector, which would dead-letter the variation the API had accepted)
    return Problem(422, f"{field}: must not contain NUL (\\u0000)", [{"field": field, "message": "contains NUL"}])


def nul_at(value: Any, at: str = "body") -> str | None:
    """Where the first string of a JSON value holding a NUL is (`generation.prompt`); None if none does."""
    if isinstance(value, str):
        return at if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        where = f"{at}.{key}".removeprefix("body.")
        if (found := nul_at(key, where) or nul_at(item, where)) is not None:
            return found
    return None


def text(value: str, field: str) -> str:
    """A path or query value bound for a text column."""
    if "\x00" in value:
        raise holds_nul(field)
    return value


def path_uuid(request: Request, name: str = "id", what: str = "variation") -> uuid.UUID:
    """A path parameter that is a UUID; anything else names no such thing (404)."""
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise Problem(404, f"no such {what}", [{"field": name, "message": "not a UUID"}]) from None


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise Problem(422, f"{name} must be an integer in {low}..{high}", [{"field": name, "message": "out of range"}])
    return value
