"""The API's own operations: health (of the API and of the workers per family), the model registry, and
the OpenAPI and AsyncAPI documents (made once, at start, for the deployment's family table)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import endpoint as e
from api import responses as r
from inference import models
from projections import views


async def asyncapi(request: Request) -> Response:
    """The AsyncAPI 3 document of every topic, for this deployment's family table."""
    return JSONResponse(request.app.state.documents["asyncapi"])


async def openapi_document(request: Request) -> Response:
    """The OpenAPI 3.1 document of this API, for this deployment's family table."""
    return JSONResponse(request.app.state.documents["openapi"])


async def health_ml(request: Request) -> Response:
    """Per family: whether a live worker serves it, how long since one was seen, its last completion."""
    async with request.app.state.pool.connection() as conn:
        completions = await views.last_completions(conn)
        heard = await views.workers(conn)
    families = {}
    for name in request.app.state.families.names:
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


ENDPOINTS = (
    e.Endpoint(
        ("GET",),
        "/health/ml",
        health_ml,
        e.READ,
        "operations",
        "Per family: is a live worker serving it",
        {200: e.Answer("degraded when some family has no live worker", r.MlHealth), **e.UNAVAILABLE},
    ),
    e.Endpoint(
        ("GET",),
        "/health",
        health,
        e.OPEN,
        "operations",
        "The API and its read model answer",
        {200: e.Answer("ok", r.Health), **e.UNAVAILABLE},
    ),
    e.Endpoint(
        ("GET",),
        "/models",
        list_models,
        e.READ,
        "operations",
        "The model registry",
        {200: e.Answer("each model, and which live workers have it loaded", r.ModelList), **e.UNAVAILABLE},
    ),
    # the documents say only what any client of the API may know
    e.Endpoint(
        ("GET",),
        "/asyncapi.json",
        asyncapi,
        e.OPEN,
        "operations",
        "The AsyncAPI 3 document of every topic",
        {200: e.DOCUMENT},
    ),
    e.Endpoint(("GET",), "/openapi.json", openapi_document, e.OPEN, "operations", "This document", {200: e.DOCUMENT}),
)
