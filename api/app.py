"""The HTTP API (base /api/images): accepts commands (202) and reads the read model and storage.
It never writes the read model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import ValidationError
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from api import access, gallery, live, openapi
from api.families import list_families
from api.images import image_response
from api.live import LiveFeed
from api.metrics import metrics
from api.problems import RETRY_LATER, Problem, field_errors, json_body, problem, query_int, text
from api.schemas import CreateVariationBody
from imagegen.config import Settings, family_table
from imagegen.config import settings as default_settings
from imagegen.storage import StorageUnavailable, open_storage
from inference import models
from projections import views
from streams import clients, codec, contract, topics
from streams import messages as m
from webhooks.routes import routes as webhook_routes

log = logging.getLogger(__name__)


CONFIRM_S = 10.0  # how long a POST waits for the command log to confirm its command


async def _send(request: Request, command: m.Command) -> None:
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


def _accepted(command: m.Command, status: str = "pending", name: str | None = None) -> dict[str, Any]:
    vid = str(command.variation_id)
    name = name or getattr(command, "name", "")
    body = {
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
    return body


def _accepting(command: m.Command, name: str, status: str) -> JSONResponse:
    body = _accepted(command, status, name)
    return JSONResponse(body, status_code=202, headers={"Location": body["links"]["self"]})


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
    try:
        body = CreateVariationBody.model_validate(await json_body(request))
    except ValidationError as exc:
        errors = field_errors(exc)
        raise Problem(422, "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors) from None
    g = body.generation
    if blocked := request.app.state.settings.brand.blocked_in(g.prompt):
        message = f"generation.prompt: has terms the brand policy blocks: {blocked}"
        raise Problem(422, message, [{"field": "generation.prompt", "message": message}])
    model_name = g.model or request.app.state.settings.default_model
    spec = models.REGISTRY.get(model_name)
    if spec is None:
        message = f"generation.model: unknown model {model_name!r}; known: {sorted(models.REGISTRY)}"
        raise Problem(422, message, [{"field": "generation.model", "message": message}])
    seed = g.seed if g.seed is not None else secrets.randbelow(m.MAX_SEED + 2 - body.variants)
    generation = m.Generation(
        prompt=g.prompt,
        negative_prompt=g.negative_prompt,
        seed=seed,
        model=model_name,
        steps=g.inference_steps or spec.default_steps,
        guidance=g.guidance_scale if g.guidance_scale is not None else spec.default_guidance,
    )
    if body.variants == 1:
        commands = [_command(body, generation, body.name, None)]
    else:  # an A/B test's siblings: one seed each, seed..seed+N-1, under the set's name
        commands = [
            _command(body, generation.model_copy(update={"seed": seed + i}), f"{body.name}-v{i + 1}", i + 1)
            for i in range(body.variants)
        ]
    async with request.app.state.pool.connection() as conn:
        made_by = [await views.command_id(conn, c.variation_id) for c in commands]
    taken = [c.name for c, by in zip(commands, made_by, strict=True) if by is not None and by != c.command_id]
    if taken:
        message = f"name {taken[0]!r} is already taken by variation {m.variation_id(taken[0])}"
        raise Problem(409, message, [{"field": "name", "message": "already taken"}])
    for command, by in zip(commands, made_by, strict=True):
        if by is None:  # the read model may lag: the aggregate decides for good (GET /commands/{commandId})
            await _send(request, command)
    accepted = [_accepted(c, "accepted" if by else "pending") for c, by in zip(commands, made_by, strict=True)]
    if body.variants == 1:
        return JSONResponse(accepted[0], status_code=202, headers={"Location": accepted[0]["links"]["self"]})
    where = f"/api/images/sets/{body.name}"
    return JSONResponse(
        {"set": body.name, "variations": accepted, "links": {"self": where}},
        status_code=202,
        headers={"Location": where},
    )


def _uuid(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["id"])
    except ValueError:
        raise Problem(404, "no such variation", [{"field": "id", "message": "not a UUID"}]) from None


async def _existing(request: Request, vid: uuid.UUID) -> dict[str, Any]:
    async with request.app.state.pool.connection() as conn:
        found = await views.variation(conn, vid)
    if found is None:
        raise Problem(404, f"no variation {vid}")
    return found


def _regenerate(vid: uuid.UUID, round_: int) -> m.RegenerateVariation:
    """Regenerating round N again, twice (a double click, a retried post) is one command: the second is dropped."""
    return m.RegenerateVariation(command_id=m.derive_id("regenerate", vid, round_), variation_id=vid)


async def regenerate_variation(request: Request) -> Response:
    vid = _uuid(request)
    existing = await _existing(request, vid)
    command = _regenerate(vid, existing["round"])
    await _send(request, command)
    return _accepting(command, existing["name"], "regenerating")


async def retry_family(request: Request) -> Response:
    """Draw one failed family again; the variation is complete when it succeeds."""
    vid, family = _uuid(request), request.path_params["family"]
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
    await _send(request, command)
    return _accepting(command, existing["name"], "retrying")


async def cancel_variation(request: Request) -> Response:
    """Stop the round being drawn: jobs not started are skipped, one in flight stops at its next step."""
    vid = _uuid(request)
    existing = await _existing(request, vid)
    if existing["status"] != "generating":
        raise Problem(
            409,
            f"only a variation being drawn can be cancelled; {existing['name']!r} is {existing['status']}",
            [{"field": "id", "message": existing["status"]}],
        )
    command = m.CancelVariation(command_id=uuid.uuid4(), variation_id=vid)
    await _send(request, command)
    return _accepting(command, existing["name"], "cancelling")


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
    commands = [_regenerate(uuid.UUID(v["id"]), v["round"]) for v in found]
    for command in commands:
        await _send(request, command)
    accepted = [_accepted(c, "regenerating", v["name"]) for c, v in zip(commands, found, strict=True)]
    body = {"set": name, "variations": accepted, "links": {"self": f"/api/images/sets/{name}"}}
    return JSONResponse(body, status_code=202)


async def follow_variation(request: Request) -> Response:
    """Server-sent events: a `snapshot` of the variation, then every event of its log (named by its
    type) and every denoising step (`FamilyProgress`) as they happen. Any id may be followed before
    its variation exists, so a client can listen before it posts."""
    vid = _uuid(request)
    feed: LiveFeed = request.app.state.live
    try:
        await asyncio.wait_for(feed.following.wait(), 10)
    except TimeoutError:
        raise Problem(503, "the event log is unreachable, retry later", headers=RETRY_LATER) from None

    async def snapshot() -> Any:
        async with request.app.state.pool.connection() as conn:
            return await views.variation(conn, vid)

    return EventSourceResponse(live.stream(feed, vid, snapshot), ping=15, send_timeout=30)


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
    vid = _uuid(request)
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


async def get_command(request: Request) -> Response:
    try:
        command_id = uuid.UUID(request.path_params["id"])
    except ValueError:
        raise Problem(404, "no such command", [{"field": "id", "message": "not a UUID"}]) from None
    async with request.app.state.pool.connection() as conn:
        found = await views.command(conn, command_id)
    return JSONResponse(found or {"commandId": str(command_id), "status": "pending"})


async def serve_image(request: Request) -> Response:
    variation, name = (text(request.path_params[p], p) for p in ("variation", "name"))
    async with request.app.state.pool.connection() as conn:
        key = await views.image_key(conn, variation, name)
    state = request.app.state
    response = await image_response(request, state.storage, key, state.settings) if key else None
    if response is None:
        raise Problem(404, f"no image {name!r} in variation {variation!r}")
    return response


async def asyncapi(request: Request) -> Response:
    """The AsyncAPI 3 document of every topic, for this deployment's family table."""
    return JSONResponse(contract.document(family_table()))


async def openapi_document(request: Request) -> Response:
    """The OpenAPI 3.1 document of this API, for this deployment's family table."""
    return JSONResponse(openapi.document(family_table()))


async def health_ml(request: Request) -> Response:
    """Per family: whether a live worker serves it, how long since one was seen, its last completion."""
    async with request.app.state.pool.connection() as conn:
        completions = await views.last_completions(conn)
        heard = await views.workers(conn)
    families = {}
    for name in family_table().names:
        serving = [w for w in heard if name in w["families"]]
        families[name] = {
            "served": any(w["live"] for w in serving),
            "liveWorkers": sum(w["live"] for w in serving),
            "secondsSinceSeen": min((w["secondsSinceSeen"] for w in serving), default=None),
            **completions.get(name, {"lastCompletedAt": None, "completed": 0}),
        }
    status = "ok" if all(f["served"] for f in families.values()) else "degraded"
    return JSONResponse({"status": status, "families": families, "workers": heard})


async def list_models(request: Request) -> Response:
    """The registry, with what live workers report they have loaded."""
    async with request.app.state.pool.connection() as conn:
        live = [w for w in await views.workers(conn) if w["live"]]
    listed = models.list_models()
    for model in listed:
        model["loaded"] = any(model["name"] in w["modelsLoaded"] for w in live)
        model["loadedBy"] = [w["worker"] for w in live if model["name"] in w["modelsLoaded"]]
    return JSONResponse({"models": listed})


async def health(request: Request) -> Response:
    async with request.app.state.pool.connection() as conn:
        await conn.execute("select 1")
    return JSONResponse({"status": "ok"})


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem(exc.status, exc.message, exc.errors, headers=exc.headers)


async def _unavailable_handler(request: Request, exc: Exception) -> Response:
    log.warning("read model unavailable: %s", exc)
    return problem(503, "the read model is unavailable, retry later", headers=RETRY_LATER)


async def _storage_handler(request: Request, exc: Exception) -> Response:
    log.warning("storage unavailable: %s", exc)
    return problem(503, "image storage is unavailable, retry later", headers=RETRY_LATER)


async def _error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal error")


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, exc.detail)


routes = [
    Mount(
        "/api/images",
        routes=[
            Route("/variations", create_variation, methods=["POST"]),
            Route("/variations", list_variations, methods=["GET"]),
            Route("/variations/name/{name}", get_variation_by_name, methods=["GET"]),
            Route("/variations/{id}", get_variation, methods=["GET"]),
            Route("/variations/{id}/regenerate", regenerate_variation, methods=["POST"]),
            Route("/variations/{id}/families/{family}/retry", retry_family, methods=["POST"]),
            Route("/variations/{id}/cancel", cancel_variation, methods=["POST"]),
            Route("/variations/{id}/live", follow_variation, methods=["GET"]),
            Route("/sets/{name}", get_variant_set, methods=["GET"]),
            Route("/sets/{name}/regenerate", regenerate_variant_set, methods=["POST"]),
            Route("/commands/{id}", get_command, methods=["GET"]),
            Route("/health/ml", health_ml, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/models", list_models, methods=["GET"]),
            Route("/families", list_families, methods=["GET"]),
            Route("/asyncapi.json", asyncapi, methods=["GET"]),
            Route("/openapi.json", openapi_document, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *webhook_routes,
            Route("/{variation}/{name}", serve_image, methods=["GET", "HEAD"]),
        ],
    ),
    *gallery.routes,  # the page at /gallery/, and / redirects there
]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or default_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.storage = open_storage(settings)
        await app.state.storage.open()  # S3: one client for the api's life, the bucket checked now
        app.state.pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=8, open=False)
        try:
            await app.state.pool.open(wait=True, timeout=30)
        except BaseException:
            await app.state.storage.close()
            raise
        app.state.producer = clients.producer(settings.kafka_bootstrap_servers, request_timeout_ms=10_000)
        app.state.live = LiveFeed(settings.kafka_bootstrap_servers)
        try:
            await app.state.producer.start()
            app.state.live.start()
            yield
        finally:
            await app.state.live.stop()
            await app.state.producer.stop()
            await app.state.pool.close()
            await app.state.storage.close()

    return Starlette(
        routes=routes,
        middleware=[access.middleware(settings)],  # keys, rate limits, body size
        lifespan=lifespan,
        exception_handlers={
            Problem: _problem_handler,
            HTTPException: _http_handler,
            psycopg.OperationalError: _unavailable_handler,
            psycopg.errors.UndefinedTable: _unavailable_handler,  # before the projector's first migration
            PoolTimeout: _unavailable_handler,
            StorageUnavailable: _storage_handler,
            Exception: _error_handler,
        },
    )
