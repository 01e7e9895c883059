"""Commands over HTTP: putting one on the command log (confirmed by the broker, or a 503 that is safe to
retry), the 202 that answers it, and what became of a create command (GET /commands/{id})."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import endpoint as e
from api import responses as r
from api.problems import RETRY_LATER, Problem, path_uuid
from projections import views
from streams import codec, topics
from streams import messages as m

log = logging.getLogger(__name__)

CONFIRM_S = 10.0  # how long a POST waits for the command log to confirm its command


async def send(request: Request, command: m.Command) -> None:
    producer: AIOKafkaProducer = request.app.state.producer
    try:
        # An idempotent producer retries a batch until the broker takes it, and never twice: the answer
        # waits for it this long, and the send goes on after a 503.
        async with asyncio.timeout(CONFIRM_S):
            delivered = await producer.send(topics.COMMANDS, key=command.key, value=codec.encode(command))
            await asyncio.shield(delivered)
    except (KafkaError, TimeoutError) as exc:
        log.warning("command not confirmed: %r", exc)
        # The broker did not confirm in time; the command may still land. Retrying is safe: a create's id is
        # derived from its content and a regenerate's from the round it follows, so a repeat is dropped.
        raise Problem(
            503,
            "the command log did not confirm the command in time; retry the same request later (a repeat is "
            "dropped if the first one did land)",
            headers=RETRY_LATER,
        ) from None


def accepted(command: m.Command, status: str = "pending", name: str | None = None) -> dict[str, Any]:
    vid = str(command.variation_id)
    name = name or getattr(command, "name", "")
    return {
        "id": vid,
        "name": name,
        "status": status,
        "commandId": str(command.command_id),
        "links": {
            "self": f"/api/images/variations/{vid}",
            "byName": f"/api/images/variations/name/{name}",
            "command": f"/api/images/commands/{command.command_id}",
        },
    }


def accepting(command: m.Command, name: str, status: str) -> JSONResponse:
    body = accepted(command, status, name)
    return JSONResponse(body, status_code=202, headers={"Location": body["links"]["self"]})


def regenerate(vid: uuid.UUID, round_: int) -> m.RegenerateVariation:
    """Regenerating round N again, twice (a double click, a retried post) is one command: the second is dropped."""
    return m.RegenerateVariation(command_id=m.derive_id("regenerate", vid, round_), variation_id=vid)


async def get_command(request: Request) -> Response:
    command_id = path_uuid(request, what="command")
    async with request.app.state.pool.connection() as conn:
        found = await views.command(conn, command_id)
    return JSONResponse(found or {"commandId": str(command_id), "status": "pending"})


ENDPOINTS = (
    e.Endpoint(
        ("GET",),
        "/commands/{id}",
        get_command,
        e.READ,
        "variations",
        "What became of a create command",
        {
            200: e.Answer("accepted, rejected (and why), or still pending", (r.DecidedCommand, r.PendingCommand)),
            404: e.Answer("not a UUID"),
            **e.UNAVAILABLE,
        },
        (e.path("id", e.UUID, "the commandId the POST answered"),),
    ),
)
