"""The HTTP API (base /api/images), put together: the endpoints api/routes.py lists, behind the access
middleware, with the read model's pool, storage, the command log's producer and the live feed for the
process's life. It accepts commands (202) and reads the read model and storage; it never writes the
read model. Nothing imports this module but the process that serves it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api import access, openapi, routes, session
from api.live import LiveFeed
from api.problems import RETRY_LATER, Problem, problem
from api.schemas import Checked
from imagegen.config import Settings
from imagegen.config import settings as default_settings
from storage import StorageUnavailable, open_storage
from streams import clients, contract, families
from streams.brand import BrandPolicy

log = logging.getLogger(__name__)


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


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


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or default_settings()
    table = families.load(families.DEFAULT_TABLE, settings.families_file)
    keys = access.load_keys(settings)
    sessions = session.configured(
        keys, settings.session_secret.get_secret_value() if settings.session_secret else None, settings.session_ttl_s
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
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

    app = Starlette(
        routes=routes.routes(),
        middleware=[access.middleware(settings, routes.scopes(), keys, sessions)],  # keys, rate limits, body size
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
    # what the handlers read, made once for this deployment
    app.state.settings, app.state.families, app.state.sessions = settings, table, sessions
    app.state.brand = BrandPolicy.configured(settings.blocked_terms, settings.brand_negative_prompt)
    app.state.checked = Checked(families=table.names, reserved=routes.RESERVED_NAMES)
    app.state.documents = {"openapi": openapi.document(table), "asyncapi": contract.document(table)}
    return app
