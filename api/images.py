"""An image from storage as an HTTP response, whichever the store: a file it holds is sent with ETag,
Last-Modified, Cache-Control, Range (206, 416) and conditional requests (304) answered here; an object
is streamed with the store's own answers to those headers, or (IMAGE_SERVING=redirect, where the store
has URLs of its own) a redirect to a presigned URL. A key outside storage is no image (None: a 404)."""

from __future__ import annotations

import email.utils
import stat
from datetime import datetime
from pathlib import Path

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from api import endpoint as e
from api.problems import Problem, text
from imagegen.config import Settings
from projections import views
from storage import Fetched, KeyOutsideStorage, Storage

CONTENT_TYPES = {"webp": "image/webp", "avif": "image/avif", "jpg": "image/jpeg", "png": "image/png"}


async def image_response(
    request: Request, storage: Storage, key: str, settings: Settings, cache_control: str | None = None
) -> Response | None:
    """`cache_control`: for this answer, instead of IMAGE_CACHE_CONTROL (a set's stable URLs' is shorter,
    and so is the reuse of their redirects)."""
    reuse = settings.image_redirect_expires_s // 2 if cache_control is None else 60
    cache_control = cache_control or settings.image_cache_control
    try:
        if settings.image_serving == "redirect":
            expires = settings.image_redirect_expires_s
            if url := await storage.presigned_url(key, expires, request.method):
                # Browsers may reuse the redirect, never past the URL's life; shared caches may not.
                headers = {"Cache-Control": f"private, max-age={min(reuse, expires // 2)}"}
                return RedirectResponse(url, status_code=307, headers=headers)
        fetched = await _fetch(request, storage, key)
    except KeyOutsideStorage:
        return None
    if fetched is None:
        return None
    if fetched.file is not None:
        return _from_file(request, fetched.file, cache_control)
    headers = {**fetched.headers, "cache-control": cache_control, "accept-ranges": "bytes"}
    if fetched.body is None:  # HEAD, 304, 416
        return Response(status_code=fetched.status, headers=headers)
    return StreamingResponse(fetched.body, status_code=fetched.status, headers=headers)


async def _fetch(request: Request, storage: Storage, key: str) -> Fetched | None:
    h = request.headers
    # If-Range holds a strong ETag or a date; anything else (a weak ETag, a bad date) matches nothing,
    # and then the whole image is sent.
    if_range = h.get("if-range")
    held = if_range if if_range is None or if_range.startswith('"') else _http_date(if_range)
    return await storage.fetch(
        key,
        head=request.method == "HEAD",
        range=h.get("range") if held is not None or if_range is None else None,
        if_range=held,
        if_none_match=h.get("if-none-match"),
        if_modified_since=_http_date(h.get("if-modified-since")),
    )


def _from_file(request: Request, path: Path, cache_control: str) -> Response | None:
    try:
        found = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    media_type = CONTENT_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")
    # FileResponse gives the ETag (of mtime and size), Last-Modified, Content-Length and answers Range
    # and If-Range (206, 416); the conditional GET (304) is ours to add.
    response = FileResponse(path, media_type=media_type, headers={"Cache-Control": cache_control}, stat_result=found)
    if _not_modified(request.headers, response.headers["etag"], found.st_mtime):
        kept = ("etag", "last-modified", "cache-control")
        return Response(status_code=304, headers={k: response.headers[k] for k in kept})
    return response


def _not_modified(headers: Headers, etag: str, mtime: float) -> bool:
    """RFC 9110 13.1.2-3: If-None-Match (weak comparison) decides when given; else If-Modified-Since."""
    tags = headers.get("if-none-match")
    if tags is not None:
        return tags.strip() == "*" or etag in {t.strip().removeprefix("W/") for t in tags.split(",")}
    since = _http_date(headers.get("if-modified-since"))
    return since is not None and int(mtime) <= since.timestamp()


def _http_date(value: str | None) -> datetime | None:
    """An HTTP date; None for a missing or malformed one, which HTTP says to ignore."""
    try:
        return email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None


async def serve_image(request: Request) -> Response:
    variation, name = (text(request.path_params[p], p) for p in ("variation", "name"))
    async with request.app.state.pool.connection() as conn:
        key = await views.image_key(conn, variation, name)
    state = request.app.state
    response = await image_response(request, state.storage, key, state.settings) if key else None
    if response is None:
        raise Problem(404, f"no image {name!r} in variation {variation!r}")
    return response


IMAGE = {ct: {"schema": {"type": "string", "contentMediaType": ct}} for ct in CONTENT_TYPES.values()}
CACHED = ("ETag", "Last-Modified", "Cache-Control")
ENDPOINTS = (
    e.Endpoint(
        ("GET", "HEAD"),  # clients HEAD an image for its size and ETag
        "/{variation}/{name}",
        serve_image,
        e.IMAGES,
        "images",
        "A family master or a derivative",
        {
            200: e.Answer("the image", None, IMAGE, CACHED),
            206: e.Answer("the requested part", None, IMAGE | {"multipart/byteranges": {}}, (*CACHED, "Content-Range")),
            304: e.Answer("not modified since the ETag or date given", None, {}, CACHED),
            307: e.Answer("IMAGE_SERVING=redirect: a presigned URL of the S3 object", None, {}, ("Location",)),
            400: e.Answer("a malformed Range header", None, e.PLAIN),
            404: e.Answer("no such image"),
            422: e.NUL,
            416: e.Answer("the Range is outside the image", None, e.PLAIN, ("Content-Range",)),
            **e.UNAVAILABLE,
        },
        (
            e.path("variation", e.NAME, "the variation's name"),
            e.path("name", {"type": "string", "minLength": 1}, "a family (its master) or a derivative"),
            e.header("Range", "bytes=…: a part of the image (206)"),
            e.header("If-Range", "the Range applies only while the image is this ETag or date"),
            e.header("If-None-Match", "an ETag: 304 while the image is unchanged"),
            e.header("If-Modified-Since", "an HTTP date: 304 while the image is unchanged"),
        ),
    ),
)
