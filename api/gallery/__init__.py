"""The gallery: the page marketers use, served at /gallery/ (and / redirects there). Plain HTML, CSS and
ES-module JavaScript in this folder, no build step and nothing fetched from elsewhere; everything it
shows comes from the API under /api/images."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

HERE = Path(__file__).parent
SERVED = (".html", ".js", ".css")  # the page's own files; this module's source is not one of them


class PageFiles(StaticFiles):
    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path != "." and Path(path).suffix not in SERVED:
            return "", None
        return super().lookup_path(path)

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        # the page is small and changes with the code: revalidate (a 304 on its ETag), never run stale code
        response.headers.setdefault("cache-control", "no-cache")
        return response


async def gallery_home(request: Request) -> Response:
    return RedirectResponse("/gallery/", status_code=307)


routes = [
    Mount("/gallery", app=PageFiles(directory=HERE, html=True), name="gallery"),
    Route("/", gallery_home, methods=["GET"]),
]
