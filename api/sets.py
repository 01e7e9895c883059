"""Variant sets over HTTP (an A/B test's variations, named {set}-v1…): read one, regenerate all of it."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import commands
from api import endpoint as e
from api import responses as r
from api.problems import Problem, text
from projections import views


async def _variant_set(request: Request, name: str) -> list[dict[str, Any]]:
    text(name, "name")
    async with request.app.state.pool.connection() as conn:
        found = await views.variant_set(conn, name)
    if not found:
        raise Problem(404, f"no variant set {name!r}")
    return found


async def get_variant_set(request: Request) -> Response:
    name = request.path_params["name"]
    found = await _variant_set(request, name)
    statuses = [v["status"] for v in found]
    return JSONResponse(
        {
            "name": name,
            "size": len(found),
            "statuses": {s: statuses.count(s) for s in set(statuses)},
            "variations": found,
        }
    )


async def regenerate_variant_set(request: Request) -> Response:
    """Draw every variation of the set again (a new round each, with its own seed)."""
    name = request.path_params["name"]
    found = await _variant_set(request, name)
    made = [commands.regenerate(uuid.UUID(v["id"]), v["round"]) for v in found]
    for command in made:
        await commands.send(request, command)
    accepted = [commands.accepted(c, "regenerating", v["name"]) for c, v in zip(made, found, strict=True)]
    body = {"set": name, "variations": accepted, "links": {"self": f"/api/images/sets/{name}"}}
    return JSONResponse(body, status_code=202)


SET_NAME = e.path("name", e.NAME, "the set's name")
ENDPOINTS = (
    e.Endpoint(
        ("GET",),
        "/sets/{name}",
        get_variant_set,
        e.READ,
        "variations",
        "A variant set (an A/B test)",
        {
            200: e.Answer("its variations, in their order", r.VariantSet),
            404: e.Answer("no such set"),
            422: e.NUL,
            **e.UNAVAILABLE,
        },
        (SET_NAME,),
    ),
    e.Endpoint(
        ("POST",),
        "/sets/{name}/regenerate",
        regenerate_variant_set,
        e.SUBMIT,
        "variations",
        "Draw every variation of the set again",
        {
            202: e.Answer("one command per variation is on the log", r.SetAccepted),
            404: e.Answer("no such set"),
            422: e.NUL,
            **e.UNAVAILABLE,
        },
        (SET_NAME,),
    ),
)
