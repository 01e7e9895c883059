"""Webhook subscriptions over HTTP (under /api/images, listed by api/routes.py): register, list, read,
delete, and each subscription's delivery log."""

from __future__ import annotations

import secrets

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import endpoint as e
from api import responses as r
from api.problems import Problem, json_body, path_uuid, query_int, validated
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


async def create_webhook(request: Request) -> Response:
    body = validated(SubscriptionBody, await json_body(request))
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
    sid = path_uuid(request, what="webhook")
    async with request.app.state.pool.connection() as conn:
        found = await store.subscription(conn, sid)
    if found is None:
        raise Problem(404, f"no webhook {sid}")
    return JSONResponse(found)


async def delete_webhook(request: Request) -> Response:
    sid = path_uuid(request, what="webhook")
    async with request.app.state.pool.connection() as conn:
        if not await store.delete_subscription(conn, sid):
            raise Problem(404, f"no webhook {sid}")
    return Response(status_code=204)


async def list_deliveries(request: Request) -> Response:
    """The delivery log, newest first: each delivery's status and every attempt."""
    sid = path_uuid(request, what="webhook")
    limit = query_int(request, "limit", 100, 1, 1000)
    async with request.app.state.pool.connection() as conn:
        if await store.subscription(conn, sid) is None:
            raise Problem(404, f"no webhook {sid}")
        items = await store.deliveries(conn, sid, limit)
    return JSONResponse({"items": items, "limit": limit})


WEBHOOK_ID = e.path("id", e.UUID, "the subscription's id")
NO_WEBHOOK = e.Answer("no such webhook (or not a UUID)")
ENDPOINTS = (
    e.Endpoint(
        ("POST",),
        "/webhooks",
        create_webhook,
        # a subscription makes the dispatcher post to any URL: not for every client that may submit
        e.ADMIN,
        "webhooks",
        "Subscribe to the domain events",
        {
            201: e.Answer(
                "the subscription (with its secret when none was sent)",
                (r.NewWebhook, r.Webhook),
                headers=("Location",),
            ),
            **e.BODY_ERRORS,
            **e.UNAVAILABLE,
        },
        body=SubscriptionBody,
    ),
    e.Endpoint(
        ("GET",),
        "/webhooks",
        list_webhooks,
        e.READ,
        "webhooks",
        "Every subscription",
        {200: e.Answer("oldest first", r.WebhookList), **e.UNAVAILABLE},
    ),
    e.Endpoint(
        ("GET",),
        "/webhooks/{id}",
        get_webhook,
        e.READ,
        "webhooks",
        "A subscription",
        {200: e.Answer("the subscription", r.Webhook), 404: NO_WEBHOOK, **e.UNAVAILABLE},
        (WEBHOOK_ID,),
    ),
    e.Endpoint(
        ("DELETE",),
        "/webhooks/{id}",
        delete_webhook,
        e.ADMIN,
        "webhooks",
        "Unsubscribe (with its delivery log)",
        {204: e.Answer("deleted", None), 404: NO_WEBHOOK, **e.UNAVAILABLE},
        (WEBHOOK_ID,),
    ),
    e.Endpoint(
        ("GET",),
        "/webhooks/{id}/deliveries",
        list_deliveries,
        e.READ,
        "webhooks",
        "The delivery log, newest first",
        {
            200: e.Answer("each delivery with every attempt", r.DeliveryPage),
            404: NO_WEBHOOK,
            422: e.Answer("limit out of range"),
            **e.UNAVAILABLE,
        },
        (
            WEBHOOK_ID,
            e.query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "at most this many"),
        ),
    ),
)
