"""Webhook subscriptions over HTTP (mounted under /api/images by api/app.py): register, list, read,
delete, and each subscription's delivery log."""

from __future__ import annotations

import secrets
import uuid

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.problems import Problem, field_errors, json_body, query_int
from streams import domain_events
from webhooks import store

# the public domain event types, as the contract names them
EVENT_TYPES = tuple(cls.model_fields["type"].default for cls in domain_events.DomainEvent.__subclasses__())


class SubscriptionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl = Field(description="where the events are posted (http or https)")
    events: list[str] = Field(default=[], max_length=len(EVENT_TYPES), description="types to receive; empty: all")
    description: str = Field(default="", max_length=500)
    secret: str | None = Field(
        default=None, min_length=16, max_length=200, description="the HMAC key; made (and shown once) when absent"
    )

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        if unknown := [e for e in value if e not in EVENT_TYPES]:
            raise ValueError(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
        return list(dict.fromkeys(value))


def _sid(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["id"])
    except ValueError:
        raise Problem(404, "no such webhook", [{"field": "id", "message": "not a UUID"}]) from None


async def create_webhook(request: Request) -> Response:
    try:
        body = SubscriptionBody.model_validate(await json_body(request))
    except ValidationError as exc:
        errors = field_errors(exc)
        raise Problem(422, "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors) from None
    secret = body.secret or secrets.token_urlsafe(32)
    async with request.app.state.pool.connection() as conn:
        created = await store.create_subscription(conn, str(body.url), secret, body.events, body.description)
    if body.secret is None:
        created["secret"] = secret  # shown this once: keep it to verify signatures
    return JSONResponse(created, status_code=201, headers={"Location": created["links"]["self"]})


async def list_webhooks(request: Request) -> Response:
    async with request.app.state.pool.connection() as conn:
        return JSONResponse({"items": await store.subscriptions(conn)})


async def get_webhook(request: Request) -> Response:
    sid = _sid(request)
    async with request.app.state.pool.connection() as conn:
        found = await store.subscription(conn, sid)
    if found is None:
        raise Problem(404, f"no webhook {sid}")
    return JSONResponse(found)


async def delete_webhook(request: Request) -> Response:
    sid = _sid(request)
    async with request.app.state.pool.connection() as conn:
        if not await store.delete_subscription(conn, sid):
            raise Problem(404, f"no webhook {sid}")
    return Response(status_code=204)


async def list_deliveries(request: Request) -> Response:
    """The delivery log, newest first: each delivery's status and every attempt."""
    sid = _sid(request)
    limit = query_int(request, "limit", 100, 1, 1000)
    async with request.app.state.pool.connection() as conn:
        if await store.subscription(conn, sid) is None:
            raise Problem(404, f"no webhook {sid}")
        items = await store.deliveries(conn, sid, limit)
    return JSONResponse({"items": items, "limit": limit})


routes = [
    Route("/webhooks", create_webhook, methods=["POST"]),
    Route("/webhooks", list_webhooks, methods=["GET"]),
    Route("/webhooks/{id}", get_webhook, methods=["GET"]),
    Route("/webhooks/{id}", delete_webhook, methods=["DELETE"]),
    Route("/webhooks/{id}/deliveries", list_deliveries, methods=["GET"]),
]
