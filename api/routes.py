"""Every endpoint of the HTTP API, in the order the router tries them, and what is derived from that one
list: the Starlette routes, the scope each handler needs (api/access.py), and the names no variation may
take (a variation's images are served at /api/images/{variation}/{name}, after every other route)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route

from api import commands, families, gallery, images, live, metrics, operations, session, sets, variations
from api.endpoint import OPEN, Endpoint
from webhooks import routes as webhooks

BASE = "/api/images"
ENDPOINTS: tuple[Endpoint, ...] = (
    *variations.ENDPOINTS,
    *live.ENDPOINTS,
    *sets.ENDPOINTS,
    *commands.ENDPOINTS,
    *operations.ENDPOINTS,
    *families.ENDPOINTS,
    *metrics.ENDPOINTS,
    *session.ENDPOINTS,
    *webhooks.ENDPOINTS,
    *images.ENDPOINTS,  # /{variation}/{name}: last, after every literal path
)

# The first segment of every literal path, before any suffix (`openapi` of openapi.json): a variation
# of that name would have image URLs another route answers, or could be mistaken for one.
RESERVED_NAMES = frozenset(
    endpoint.path.split("/")[1].split(".")[0] for endpoint in ENDPOINTS if not endpoint.path.startswith("/{")
)


def routes() -> list[BaseRoute]:
    api = [Route(e.path, e.handler, methods=list(e.methods)) for e in ENDPOINTS]
    return [Mount(BASE, routes=api), *gallery.routes]  # the page at /gallery/, and / redirects there


def scopes() -> dict[object, str]:
    """What calling each handler needs; the gallery's own files hold no data and are open (its calls to
    /api/images need a key like any other)."""
    table: dict[object, str] = {e.handler: e.scope for e in ENDPOINTS}
    for route in gallery.routes:
        table[route.app if isinstance(route, Mount) else getattr(route, "endpoint", route)] = OPEN
    return table
