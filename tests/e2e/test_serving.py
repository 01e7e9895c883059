"""Serving images over HTTP. One variation is drawn by the session's services (filesystem storage); its
images are served with their validators, ranges and conditional answers, and no request reaches a file
outside storage. The same read model is then served from S3 by api processes of their own: streamed,
or redirected to a presigned URL."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import http.client
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest

from imagegen.devstack import DevStack, S3Server, free_port
from imagegen.services import Services
from storage import CACHE_CONTROL, FileStorage, S3Storage
from tests.builders import create_body, generation_body
from tests.conftest import ARTIFACTS
from tests.e2e.test_http import wait_for

NAME = "serving-story"
BODY = create_body(NAME, generation_body("a red kite over dunes", 5), families=["facebook-og"], category="tests")
IMAGE = f"/api/images/{NAME}/og-image"
NOT_IN_BUCKET = "linkedin-share"  # a derivative the read model knows and the bucket lacks


@pytest.fixture(scope="module")
def variation(api: httpx.Client) -> dict:
    r = api.post("/api/images/variations", json=BODY)
    assert r.status_code == 202, r.text
    done = wait_for(api, r.json()["id"])
    assert done["status"] == "completed", done
    return done


@pytest.fixture(scope="module")
def image(api: httpx.Client, variation: dict) -> bytes:
    served = api.get(IMAGE)
    assert served.status_code == 200
    return served.content


def raw_get(base_url: str, target: str) -> tuple[int, bytes]:
    """GET with the request target sent as written: httpx would normalise away the '..' we mean to send."""
    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request("GET", target)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_an_image_carries_its_validators_and_cache_policy(api: httpx.Client, image: bytes) -> None:
    served = api.get(IMAGE)
    h = served.headers
    assert h["content-type"] == "image/webp" and h["content-length"] == str(len(image))
    assert h["etag"].startswith('"') and h["accept-ranges"] == "bytes"  # a strong ETag: ranges may use it
    assert h["cache-control"] == CACHE_CONTROL
    assert email.utils.parsedate_to_datetime(h["last-modified"]).tzinfo is not None
    head = api.head(IMAGE)
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == h["etag"]
    assert head.headers["content-length"] == str(len(image))


def test_a_client_holding_the_image_gets_304(api: httpx.Client, image: bytes) -> None:
    h = api.get(IMAGE).headers
    etag, modified = h["etag"], h["last-modified"]
    for held in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = api.get(IMAGE, headers={"If-None-Match": held})
        assert again.status_code == 304 and again.content == b"", held
        assert again.headers["etag"] == etag and again.headers["cache-control"] == CACHE_CONTROL
    assert api.get(IMAGE, headers={"If-Modified-Since": modified}).status_code == 304
    assert api.get(IMAGE, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).content == image
    # If-None-Match decides when both are sent: a changed ETag wins over an unchanged date
    assert api.get(IMAGE, headers={"If-None-Match": '"other"', "If-Modified-Since": modified}).status_code == 200
    assert api.get(IMAGE, headers={"If-Modified-Since": "not a date"}).status_code == 200


def test_ranges_are_served_and_an_unsatisfiable_one_is_416(api: httpx.Client, image: bytes) -> None:
    size, etag = len(image), api.head(IMAGE).headers["etag"]
    part = api.get(IMAGE, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == image[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{size}"
    assert api.get(IMAGE, headers={"Range": "bytes=-10"}).content == image[-10:]
    beyond = api.get(IMAGE, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    # a range of the version the client holds; of another version, the whole image
    assert api.get(IMAGE, headers={"Range": "bytes=0-9", "If-Range": etag}).status_code == 206
    stale = api.get(IMAGE, headers={"Range": "bytes=0-9", "If-Range": '"older"'})
    assert stale.status_code == 200 and stale.content == image


@pytest.fixture(scope="module")
def secret(stack: DevStack) -> bytes:
    """A file next to the storage folder, which no request may read."""
    (stack.storage_path.parent / "secret.webp").write_bytes(b"RIFF not for you")
    return b"not for you"


TRAVERSALS = [
    "/api/images/../../secret.webp",
    f"/api/images/{NAME}/../../secret.webp",
    f"/api/images/{NAME}/..%2F..%2Fsecret.webp",
    f"/api/images/{NAME}/%2e%2e%2f%2e%2e%2fsecret.webp",
    "/api/images/%2e%2e/%2e%2e",
    f"/api/images/{NAME}/%2e%2e",
    f"/api/images/{NAME}/..%2Fmasters%2Ffacebook-og",
    "/api/images/%2Fetc%2Fpasswd/x",
    f"/api/images/{NAME}/%2Fetc%2Fpasswd",
    "/api/images//etc/passwd",
    f"/api/images/{NAME}/..\\..\\secret.webp",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_a_path_that_climbs_or_is_absolute_is_404(api: httpx.Client, variation: dict, secret: bytes, target: str):
    status, body = raw_get(str(api.base_url), target)
    assert status == 404 and secret not in body and b"root:" not in body, body[:200]


def test_a_symlink_in_storage_pointing_outside_is_404(api: httpx.Client, stack: DevStack, variation: dict, secret):
    # someone with access to the folder swaps an image for a link to a file outside it
    path = stack.storage_path / NAME / "derivatives" / f"{NOT_IN_BUCKET}.webp"
    kept = path.with_suffix(".kept")
    path.rename(kept)
    try:
        path.symlink_to(stack.storage_path.parent / "secret.webp")
        served = api.get(f"/api/images/{NAME}/{NOT_IN_BUCKET}")
        assert served.status_code == 404 and secret not in served.content
    finally:
        path.unlink(missing_ok=True)
        kept.rename(path)
    assert api.get(f"/api/images/{NAME}/{NOT_IN_BUCKET}").status_code == 200


@pytest.fixture(scope="module")
def s3_apis(stack: DevStack, s3: S3Server, variation: dict) -> Iterator[dict[str, str]]:
    """The variation's files copied into the bucket under the same keys (but one), and an api process
    per IMAGE_SERVING mode reading the same read model from S3."""

    async def copy() -> None:
        folder = FileStorage(stack.storage_path)
        async with S3Storage(
            s3.bucket,
            endpoint_url=s3.endpoint_url,
            access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key,
        ) as bucket:
            for key in await folder.list(f"{NAME}/"):
                if NOT_IN_BUCKET not in key:
                    await bucket.put(key, await folder.get(key) or b"", "image/webp")

    asyncio.run(copy())
    apis = {
        mode: Services({**stack.env(), **s3.env(), "IMAGE_SERVING": mode}, ARTIFACTS / "logs", api_port=free_port())
        for mode in ("stream", "redirect")
    }
    try:
        for mode, service in apis.items():
            service.spawn(f"api-s3-{mode}", "api")
        for service in apis.values():
            service.wait_for_api(60)
        yield {mode: service.api_url for mode, service in apis.items()}
    finally:
        for service in apis.values():
            service.stop()


def test_an_image_streamed_from_s3_keeps_its_validators_ranges_and_304(s3_apis: dict[str, str], image: bytes):
    with httpx.Client(base_url=s3_apis["stream"], timeout=30) as s3_api:
        served = s3_api.get(IMAGE)
        h = served.headers
        assert served.status_code == 200 and served.content == image
        assert h["content-type"] == "image/webp" and h["content-length"] == str(len(image))
        assert h["etag"] == f'"{hashlib.md5(image).hexdigest()}"' and h["cache-control"] == CACHE_CONTROL
        assert email.utils.parsedate_to_datetime(h["last-modified"]).tzinfo is not None
        part = s3_api.get(IMAGE, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == image[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(image)}"
        beyond = s3_api.get(IMAGE, headers={"Range": f"bytes={len(image)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(image)}"
        stale = s3_api.get(IMAGE, headers={"Range": "bytes=10-19", "If-Range": '"older"'})
        assert stale.status_code == 200 and stale.content == image
        held = s3_api.get(IMAGE, headers={"If-None-Match": h["etag"]})
        assert held.status_code == 304 and held.content == b"" and held.headers["etag"] == h["etag"]
        assert s3_api.get(IMAGE, headers={"If-Modified-Since": h["last-modified"]}).status_code == 304
        head = s3_api.head(IMAGE)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(image)) and not head.content
        assert s3_api.get(f"/api/images/{NAME}/{NOT_IN_BUCKET}").status_code == 404
        for target in TRAVERSALS:
            assert raw_get(s3_apis["stream"], target)[0] == 404, target


def test_an_image_in_s3_can_be_a_redirect_to_a_presigned_url(s3_apis: dict[str, str], s3: S3Server, image: bytes):
    with httpx.Client(base_url=s3_apis["redirect"], timeout=30) as s3_api:
        sent = s3_api.get(IMAGE)
        assert sent.status_code == 307 and sent.headers["cache-control"] == "private, max-age=150"
        location = sent.headers["location"]
        assert location.startswith(f"{s3.endpoint_url}/images/{NAME}/derivatives/og-image.webp?")
        assert "X-Amz-Expires=300" in location and "X-Amz-Signature=" in location
        followed = s3_api.get(IMAGE, follow_redirects=True)
        assert followed.status_code == 200 and followed.content == image
        assert followed.headers["content-type"] == "image/webp" and followed.headers["cache-control"] == CACHE_CONTROL
        head = s3_api.head(IMAGE)  # a presigned GET would refuse a HEAD: it gets a URL of its own
        assert head.status_code == 307 and httpx.head(head.headers["location"]).status_code == 200
        assert httpx.head(location).status_code == 403
