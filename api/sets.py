"""Variant sets over HTTP (an A/B test's variations, named {set}-v1…): read one, regenerate all of it,
choose its winner, and serve the winner's images under the set's stable URLs."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import commands
from api import endpoint as e
from api import responses as r
from api.images import CACHED, IMAGE, image_response
from api.problems import Problem, json_body, text, validated
from api.schemas import ChooseWinnerBody
from projections import views
from streams import messages as m
from streams import variant_sets


async def _variant_set(request: Request, name: str) -> list[dict[str, Any]]:
    text(name, "name")
    async with request.app.state.pool.connection() as conn:
        found = await views.variant_set(conn, name)
    if not found:
        raise Problem(404, f"no variant set {name!r}")
    return found


def _image_names(variation: dict[str, Any]) -> list[str]:
    """Its images' names: each family's (its master) and each derivative's."""
    return [
        n for f in variation["families"] if f["publicUrl"] for n in (f["name"], *(d["name"] for d in f["derivatives"]))
    ]


async def get_variant_set(request: Request) -> Response:
    name = request.path_params["name"]
    found = await _variant_set(request, name)
    async with request.app.state.pool.connection() as conn:
        choices = await views.set_choices(conn, name)
    statuses = [v["status"] for v in found]
    winner = None
    if choices:
        won = next((v for v in found if v["variantSet"]["variant"] == choices[-1]["variant"]), None)
        base = request.app.state.settings.public_base_url
        winner = {**choices[-1], "setUrls": variant_sets.set_urls(base, name, _image_names(won) if won else [])}
    return JSONResponse(
        {
            "name": name,
            "size": len(found),
            "statuses": {s: statuses.count(s) for s in set(statuses)},
            "variations": found,
            "winner": winner,
            "choices": choices,
        }
    )


async def choose_winner(request: Request) -> Response:
    """Choose the set's winner: a completed variant, from then on served under the set's stable URLs."""
    name = request.path_params["name"]
    body = validated(ChooseWinnerBody, await json_body(request))
    found = await _variant_set(request, name)
    chosen = next((v for v in found if v["variantSet"]["variant"] == body.variant), None)
    if chosen is None:
        message = f"variant: set {name!r} has variants 1 to {len(found)}, not {body.variant}"
        raise Problem(422, message, [{"field": "variant", "message": f"not a variant of {name!r}"}])
    if chosen["status"] != "completed":
        message = f"variant {body.variant} ({chosen['name']}) is {chosen['status']}: only a completed variant can win"
        raise Problem(409, message, [{"field": "variant", "message": chosen["status"]}])
    async with request.app.state.pool.connection() as conn:
        so_far = len(await views.set_choices(conn, name))
    command = m.ChooseWinner(
        # the same choice posted twice (a double click, a retried post) before it is decided is one command
        command_id=m.derive_id("choose", name, body.variant, body.reason, so_far),
        variation_id=uuid.UUID(chosen["id"]),
        set_id=m.set_id(name),
        set_name=name,
        variant=body.variant,
        round=chosen["round"],
        reason=body.reason,
    )
    await commands.send(request, command)
    where = f"/api/images/sets/{name}"
    accepted = {
        "set": name,
        "variant": body.variant,
        "variationId": chosen["id"],
        "name": chosen["name"],
        "status": "choosing",
        "commandId": str(command.command_id),
        "links": {"self": where},
    }
    return JSONResponse(accepted, status_code=202, headers={"Location": where})


async def serve_set_image(request: Request) -> Response:
    """The set's winner's image of that name: a page points its meta tags here once."""
    name, image = (text(request.path_params[p], p) for p in ("name", "image"))
    async with request.app.state.pool.connection() as conn:
        winner = await views.set_winner(conn, name)
        key = await views.image_key(conn, winner[1], image) if winner else None
    if winner is None:
        raise Problem(404, f"set {name!r} has no winner yet (POST /api/images/sets/{name}/winner)")
    state = request.app.state
    response = (
        await image_response(request, state.storage, key, state.settings, state.settings.set_cache_control)
        if key
        else None
    )
    if response is None:
        raise Problem(404, f"no image {image!r} in set {name!r}'s winner, {winner[1]!r}")
    response.headers["Content-Location"] = f"/api/images/{winner[1]}/{image}"  # the variant's own URL
    response.headers["X-Variant"] = str(winner[0])
    return response


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
    e.Endpoint(
        ("POST",),
        "/sets/{name}/winner",
        choose_winner,
        e.SUBMIT,
        "variations",
        "Choose the set's winner (an A/B test's result)",
        {
            202: e.Answer(
                "the choice is on the log; the set shows it once decided", r.WinnerAccepted, headers=("Location",)
            ),
            404: e.Answer("no such set"),
            409: e.Answer("the variant is not completed (generating, partial, failed or cancelled)"),
            **e.BODY_ERRORS,
            **e.UNAVAILABLE,
        },
        (SET_NAME,),
        ChooseWinnerBody,
    ),
    e.Endpoint(
        ("GET", "HEAD"),
        "/sets/{name}/{image}",
        serve_set_image,
        e.IMAGES,
        "images",
        "The set's winner's image: a stable URL for a page's meta tags",
        {
            200: e.Answer("the winner's image", None, IMAGE, (*CACHED, "Content-Location", "X-Variant")),
            206: e.Answer("the requested part", None, IMAGE | {"multipart/byteranges": {}}, (*CACHED, "Content-Range")),
            304: e.Answer("not modified since the ETag or date given", None, {}, CACHED),
            307: e.Answer("IMAGE_SERVING=redirect: a presigned URL of the winner's S3 object", None, {}, ("Location",)),
            404: e.Answer("no such set, no winner yet, or no such image"),
            422: e.NUL,
            **e.UNAVAILABLE,
        },
        (SET_NAME, e.path("image", {"type": "string", "minLength": 1}, "a family (its master) or a derivative")),
    ),
)
