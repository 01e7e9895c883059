"""Variations over HTTP: create one (or a variant set), read them, and regenerate, retry and cancel one
(following one is api/live.py). Commands are answered 202 once on the log (api/commands.py); reads come
from the read model."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any, get_args

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import commands
from api import endpoint as e
from api import responses as r
from api.problems import Problem, json_body, path_uuid, query_int, text, validated
from api.schemas import CreateVariationBody
from inference import models
from projections import views
from streams import limits
from streams import messages as m


def _command(body: CreateVariationBody, generation: m.Generation, name: str, variant: int | None) -> m.CreateVariation:
    fields = dict(
        variation_id=m.variation_id(name),
        name=name,
        category=body.category,
        families=tuple(body.families),
        generation=generation,
        priority="dx" if body.is_dx_job else "normal",
        focal_point=m.FocalPoint(**body.focal_point.model_dump()) if body.focal_point else None,
        focal_points={f: m.FocalPoint(**p.model_dump()) for f, p in body.focal_points.items()},
        **({"variant_set": body.name, "variant": variant} if variant else {}),
    )
    # The same request sent twice is the same command: the aggregate drops the second.
    command_id = m.derive_id("create", json.dumps({k: str(v) for k, v in fields.items()}, sort_keys=True))
    return m.CreateVariation(command_id=command_id, **fields)  # type: ignore[arg-type]


async def create_variation(request: Request) -> Response:
    body = validated(CreateVariationBody, await json_body(request), request.app.state.checked)
    g = body.generation
    if blocked := request.app.state.brand.blocked_in(g.prompt):
        message = f"generation.prompt: has terms the brand policy blocks: {blocked}"
        raise Problem(422, message, [{"field": "generation.prompt", "message": message}])
    model_name = g.model or request.app.state.settings.default_model
    spec = models.REGISTRY.get(model_name)
    if spec is None:
        message = f"generation.model: unknown model {model_name!r}; known: {sorted(models.REGISTRY)}"
        raise Problem(422, message, [{"field": "generation.model", "message": message}])
    seed = g.seed if g.seed is not None else secrets.randbelow(limits.MAX_SEED + 2 - body.variants)
    generation = m.Generation(
        prompt=g.prompt,
        negative_prompt=g.negative_prompt,
        seed=seed,
        model=model_name,
        steps=g.inference_steps or spec.default_steps,
        guidance=g.guidance_scale if g.guidance_scale is not None else spec.default_guidance,
        refine=g.refine if g.refine is not None else spec.default_refine,
    )
    if body.variants == 1:
        made = [_command(body, generation, body.name, None)]
    else:  # an A/B test's siblings: one seed each, seed..seed+N-1, under the set's name
        made = [
            _command(body, generation.model_copy(update={"seed": seed + i}), f"{body.name}-v{i + 1}", i + 1)
            for i in range(body.variants)
        ]
    async with request.app.state.pool.connection() as conn:
        made_by = [await views.command_id(conn, c.variation_id) for c in made]
    taken = [c.name for c, by in zip(made, made_by, strict=True) if by is not None and by != c.command_id]
    if taken:
        message = f"name {taken[0]!r} is already taken by variation {m.variation_id(taken[0])}"
        raise Problem(409, message, [{"field": "name", "message": "already taken"}])
    for command, by in zip(made, made_by, strict=True):
        if by is None:  # the read model may lag: the aggregate decides for good (GET /commands/{commandId})
            await commands.send(request, command)
    accepted = [commands.accepted(c, "accepted" if by else "pending") for c, by in zip(made, made_by, strict=True)]
    if body.variants == 1:
        return JSONResponse(accepted[0], status_code=202, headers={"Location": accepted[0]["links"]["self"]})
    where = f"/api/images/sets/{body.name}"
    return JSONResponse(
        {"set": body.name, "variations": accepted, "links": {"self": where}},
        status_code=202,
        headers={"Location": where},
    )


async def _existing(request: Request, vid: uuid.UUID) -> dict[str, Any]:
    async with request.app.state.pool.connection() as conn:
        found = await views.variation(conn, vid)
    if found is None:
        raise Problem(404, f"no variation {vid}")
    return found


async def regenerate_variation(request: Request) -> Response:
    vid = path_uuid(request)
    existing = await _existing(request, vid)
    command = commands.regenerate(vid, existing["round"])
    await commands.send(request, command)
    return commands.accepting(command, existing["name"], "regenerating")


async def retry_family(request: Request) -> Response:
    """Draw one failed family again; the variation is complete when it succeeds."""
    vid, family = path_uuid(request), request.path_params["family"]
    existing = await _existing(request, vid)
    row = next((f for f in existing["families"] if f["name"] == family), None)
    if row is None:
        raise Problem(
            404,
            f"variation {existing['name']!r} has no family {family!r}",
            [{"field": "family", "message": "not one of the variation's families"}],
        )
    if row["status"] != "failed":
        raise Problem(
            409,
            f"only a failed family can be retried; {family!r} is {row['status']}",
            [{"field": "family", "message": row["status"]}],
        )
    command = m.RetryFamily(command_id=uuid.uuid4(), variation_id=vid, family=family)
    await commands.send(request, command)
    return commands.accepting(command, existing["name"], "retrying")


async def cancel_variation(request: Request) -> Response:
    """Stop the round being drawn: jobs not started are skipped, one in flight stops at its next step."""
    vid = path_uuid(request)
    existing = await _existing(request, vid)
    if existing["status"] != "generating":
        raise Problem(
            409,
            f"only a variation being drawn can be cancelled; {existing['name']!r} is {existing['status']}",
            [{"field": "id", "message": existing["status"]}],
        )
    command = m.CancelVariation(command_id=uuid.uuid4(), variation_id=vid)
    await commands.send(request, command)
    return commands.accepting(command, existing["name"], "cancelling")


async def list_variations(request: Request) -> Response:
    limit = query_int(request, "limit", 20, 1, 200)
    offset = query_int(request, "offset", 0, 0, 10_000_000)
    q = {k: text(v, k) for k, v in request.query_params.items() if k in ("status", "category", "q", "set")}
    async with request.app.state.pool.connection() as conn:
        items, total = await views.variations(
            conn, limit, offset, q.get("status"), q.get("category"), q.get("q"), q.get("set")
        )
    return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})


async def get_variation(request: Request) -> Response:
    vid = path_uuid(request)
    async with request.app.state.pool.connection() as conn:
        found = await views.variation(conn, vid)
    if found is None:
        raise Problem(404, f"no variation {vid}")
    return JSONResponse(found)


async def get_variation_by_name(request: Request) -> Response:
    name = text(request.path_params["name"], "name")
    async with request.app.state.pool.connection() as conn:
        found = await views.variation_by_name(conn, name)
    if found is None:
        raise Problem(404, f"no variation named {name!r}")
    return JSONResponse(found)


ENDPOINTS = (
    e.Endpoint(
        ("POST",),
        "/variations",
        create_variation,
        e.SUBMIT,
        "variations",
        "Create a variation (or a variant set)",
        {
            202: e.Answer(
                "the command is on the log (variants > 1: one per variation of the set)",
                (r.Accepted, r.SetAccepted),
                headers=("Location",),
            ),
            **e.BODY_ERRORS,
            409: e.Answer("the name is taken by another request's variation"),
            **e.UNAVAILABLE,
        },
        body=CreateVariationBody,
    ),
    e.Endpoint(
        ("GET",),
        "/variations",
        list_variations,
        e.READ,
        "variations",
        "Variations, newest first",
        {
            200: e.Answer("a page of them", r.VariationPage),
            422: e.Answer("limit or offset out of range, or a filter holds a NUL (\\u0000)"),
            **e.UNAVAILABLE,
        },
        (
            e.query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 20}, "page size"),
            e.query("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0}, "skipped"),
            e.query("status", {"type": "string", "enum": list(get_args(r.VariationStatus))}, "only in this status"),
            e.query("category", {"type": "string"}, "only of this category"),
            e.query("q", {"type": "string"}, "in the name or the category"),
            e.query("set", {"type": "string"}, "only of this variant set"),
        ),
    ),
    e.Endpoint(
        ("GET",),
        "/variations/name/{name}",
        get_variation_by_name,
        e.READ,
        "variations",
        "A variation by name",
        {
            200: e.Answer("the variation with its families and derivatives", r.VariationDetail),
            404: e.Answer("no variation of that name"),
            422: e.NUL,
            **e.UNAVAILABLE,
        },
        (e.path("name", e.NAME, "the variation's name"),),
    ),
    e.Endpoint(
        ("GET",),
        "/variations/{id}",
        get_variation,
        e.READ,
        "variations",
        "A variation",
        {
            200: e.Answer("the variation with its families and derivatives", r.VariationDetail),
            404: e.NOT_FOUND,
            **e.UNAVAILABLE,
        },
        (e.VARIATION_ID,),
    ),
    e.Endpoint(
        ("POST",),
        "/variations/{id}/regenerate",
        regenerate_variation,
        e.SUBMIT,
        "variations",
        "Draw every family again (a new round, a new seed)",
        {202: e.ACCEPTED, 404: e.NOT_FOUND, **e.UNAVAILABLE},
        (e.VARIATION_ID,),
    ),
    e.Endpoint(
        ("POST",),
        "/variations/{id}/families/{family}/retry",
        retry_family,
        e.SUBMIT,
        "variations",
        "Draw one failed family again",
        {
            202: e.ACCEPTED,
            404: e.Answer("no such variation, or it has no such family"),
            409: e.Answer("the family has not failed"),
            **e.UNAVAILABLE,
        },
        (e.VARIATION_ID, e.path("family", {"type": "string"}, "one of the variation's families")),
    ),
    e.Endpoint(
        ("POST",),
        "/variations/{id}/cancel",
        cancel_variation,
        e.SUBMIT,
        "variations",
        "Stop the round being drawn",
        {
            202: e.ACCEPTED,
            404: e.NOT_FOUND,
            409: e.Answer("the variation is not being drawn"),
            **e.UNAVAILABLE,
        },
        (e.VARIATION_ID,),
    ),
)
