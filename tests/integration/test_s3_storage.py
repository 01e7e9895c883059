"""S3 storage against a real S3 server (SeaweedFS, signatures on): what it stores is checked with a
plain client of its own, and a worker's family job stores its images there."""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError

from imagegen.config import Settings
from imagegen.devstack import S3Server, free_port
from storage import CACHE_CONTROL, Fetched, KeyOutsideStorage, S3Storage, StorageError, StorageUnavailable
from streams import messages as m
from streams.families import load
from streams.jobs import FamilyJobs
from tests.builders import generate_family, generation

WEBP = b"RIFF\x0c\x00\x00\x00WEBPVP8 " + bytes(range(200))


def storage_on(s3: S3Server, **kwargs: Any) -> S3Storage:
    credentials = dict(access_key_id=s3.access_key_id, secret_access_key=s3.secret_access_key)
    return S3Storage(s3.bucket, endpoint_url=s3.endpoint_url, **{**credentials, **kwargs})


@pytest.fixture(scope="module")
async def storage(s3: S3Server) -> AsyncIterator[S3Storage]:
    async with storage_on(s3) as opened:
        yield opened


def client_on(s3: S3Server, secret: str | None = None) -> Any:
    """A plain aiobotocore client, to see what is in the bucket without our code in between."""
    return AioSession().create_client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=secret or s3.secret_access_key,
    )


@pytest.fixture(scope="module")
async def raw(s3: S3Server) -> AsyncIterator[Any]:
    async with client_on(s3) as client:
        yield client


@pytest.fixture
def room() -> str:
    """A key prefix of this test's own: the bucket is shared by the session."""
    return f"t{uuid.uuid4().hex[:8]}"


async def test_put_stores_the_content_type_and_cache_headers(storage: S3Storage, raw: Any, room: str) -> None:
    await storage.put(f"{room}/masters/square.webp", WEBP, "image/webp")
    await storage.put(f"{room}/derivatives/og.jpg", b"\xff\xd8jpeg", "image/jpeg", cache_control="no-cache")
    head = await raw.head_object(Bucket="images", Key=f"{room}/masters/square.webp")
    assert head["ContentType"] == "image/webp" and head["CacheControl"] == CACHE_CONTROL == "public, max-age=300"
    assert head["ContentLength"] == len(WEBP) and head["ETag"] == f'"{hashlib.md5(WEBP).hexdigest()}"'
    got = await raw.get_object(Bucket="images", Key=f"{room}/derivatives/og.jpg")
    assert (got["ContentType"], got["CacheControl"]) == ("image/jpeg", "no-cache")
    assert await got["Body"].read() == b"\xff\xd8jpeg"


async def test_get_round_trips_and_a_missing_key_is_none(storage: S3Storage, room: str) -> None:
    await storage.put(f"{room}/masters/square.webp", WEBP, "image/webp")
    assert await storage.get(f"{room}/masters/square.webp") == WEBP
    assert await storage.get(f"{room}/masters/missing.webp") is None


async def test_a_put_overwrites_the_same_key(storage: S3Storage, room: str) -> None:
    # a regenerate writes its round's images over the last round's
    await storage.put(f"{room}/masters/square.webp", b"round one", "image/webp")
    await storage.put(f"{room}/masters/square.webp", b"round two", "image/webp")
    assert await storage.get(f"{room}/masters/square.webp") == b"round two"
    assert await storage.list(f"{room}/") == [f"{room}/masters/square.webp"]


async def test_delete_removes_and_deleting_a_missing_key_is_no_error(storage: S3Storage, raw: Any, room: str) -> None:
    await storage.put(f"{room}/masters/square.webp", WEBP, "image/webp")
    await storage.delete(f"{room}/masters/square.webp")
    assert await storage.get(f"{room}/masters/square.webp") is None
    assert (await raw.list_objects_v2(Bucket="images", Prefix=f"{room}/")).get("KeyCount") == 0
    await storage.delete(f"{room}/masters/square.webp")


async def test_list_gives_the_keys_under_a_prefix_sorted(storage: S3Storage, room: str) -> None:
    keys = [f"{room}/derivatives/b.webp", f"{room}/masters/square.webp", f"{room}/derivatives/a.webp"]
    for key in [*keys, f"{room}x/masters/square.webp"]:  # a sibling that only shares the text
        await storage.put(key, WEBP, "image/webp")
    assert await storage.list(f"{room}/") == sorted(keys)
    assert await storage.list(f"{room}/derivatives/") == sorted(keys)[:2]
    assert await storage.list(f"{room}/nothing/") == []


@pytest.mark.parametrize("key", ["../secret", "v/../../secret", "/etc/passwd", "", "v\\..\\x", "a\x00b", "v/./x"])
async def test_a_key_that_could_leave_its_place_is_refused(storage: S3Storage, key: str) -> None:
    for call in (storage.put(key, WEBP, "image/webp"), storage.get(key), storage.delete(key)):
        with pytest.raises(KeyOutsideStorage):
            await call
    with pytest.raises(KeyOutsideStorage):
        await storage.presigned_url(key, 60)


async def test_a_prefix_keeps_keys_under_it_and_no_key_climbs_out(s3: S3Server, raw: Any, room: str) -> None:
    async with storage_on(s3, prefix=f"/{room}/tenant-a/") as tenant:
        await tenant.put("v/masters/square.webp", WEBP, "image/webp")
        assert await tenant.list() == ["v/masters/square.webp"]
        assert await tenant.get("v/masters/square.webp") == WEBP
        with pytest.raises(KeyOutsideStorage):
            await tenant.get("../tenant-b/v/masters/square.webp")
    listed = await raw.list_objects_v2(Bucket="images", Prefix=f"{room}/")
    assert [o["Key"] for o in listed["Contents"]] == [f"{room}/tenant-a/v/masters/square.webp"]


async def test_a_wrong_secret_and_an_unsigned_request_are_refused(s3: S3Server, storage: S3Storage, room: str) -> None:
    await storage.put(f"{room}/masters/square.webp", WEBP, "image/webp")
    forged = storage_on(s3, secret_access_key="not-" + s3.secret_access_key)
    with pytest.raises(StorageError, match=r"\(403\).*HeadBucket") as refused:
        await forged.open()  # the bucket is checked at open: a bad setting stops a service at start
    assert not isinstance(refused.value, StorageUnavailable)  # not worth a retry
    async with client_on(s3, secret="not-" + s3.secret_access_key) as client:
        with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
            await client.get_object(Bucket="images", Key=f"{room}/masters/square.webp")
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(f"{s3.endpoint_url}/images/{room}/masters/square.webp", timeout=5)
    assert unsigned.value.code == 403


async def test_a_presigned_url_gets_its_object_until_tampered_with(storage: S3Storage, room: str) -> None:
    await storage.put(f"{room}/masters/square.webp", WEBP, "image/webp")
    url = await storage.presigned_url(f"{room}/masters/square.webp", 60)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    async with httpx.AsyncClient() as client:
        got = await client.get(url)
        assert got.status_code == 200 and got.content == WEBP and got.headers["content-type"] == "image/webp"
        assert (await client.head(await storage.presigned_url(f"{room}/masters/square.webp", 60, "HEAD"))).is_success
        await storage.put(f"{room}/masters/other.webp", b"other", "image/webp")
        assert (await client.get(url.replace("square.webp", "other.webp"))).status_code == 403


async def test_fetch_passes_range_and_conditions_to_s3(storage: S3Storage, room: str) -> None:
    key = f"{room}/masters/square.webp"
    await storage.put(key, WEBP, "image/webp")
    whole = await storage.fetch(key)
    assert whole is not None and whole.status == 200 and whole.body is not None
    assert b"".join([chunk async for chunk in whole.body]) == WEBP
    etag = whole.headers["etag"]
    assert whole.headers["content-length"] == str(len(WEBP)) and "last-modified" in whole.headers

    part = await storage.fetch(key, range="bytes=4-11")
    assert part is not None and part.status == 206 and part.headers["content-range"] == f"bytes 4-11/{len(WEBP)}"
    assert part.body is not None and b"".join([c async for c in part.body]) == WEBP[4:12]
    assert (await storage.fetch(key, if_none_match=etag)) == Fetched(304, {"etag": etag})
    unsatisfiable = await storage.fetch(key, range="bytes=9999-")
    assert unsatisfiable is not None and unsatisfiable.status == 416
    assert unsatisfiable.headers == {"content-range": f"bytes */{len(WEBP)}"}
    # If-Range naming an older version: the whole of the current one
    stale = await storage.fetch(key, range="bytes=4-11", if_range='"0123"')
    assert stale is not None and stale.status == 200 and stale.headers["content-length"] == str(len(WEBP))
    head = await storage.fetch(key, head=True)
    assert head is not None and head.status == 200 and head.body is None and head.headers["etag"] == etag
    assert await storage.fetch(f"{room}/masters/missing.webp") is None


async def test_an_unreachable_server_is_a_retryable_error(room: str) -> None:
    began = time.monotonic()
    nowhere = f"http://127.0.0.1:{free_port()}"
    nobody = S3Storage("images", endpoint_url=nowhere, access_key_id="a", secret_access_key="b", attempts=1)
    with pytest.raises(StorageUnavailable) as failed:
        await nobody.put(f"{room}/masters/square.webp", WEBP, "image/webp")
    assert isinstance(failed.value, OSError)  # what a family job retries (streams/jobs.py RETRYABLE)
    print(f"\nunreachable S3 reported in {time.monotonic() - began:.2f} s")


@pytest.fixture(scope="module")
def tiny_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("s3-jobs")
    # the tiny weights are built here (MODEL_CACHE_DIR), not in the checkout
    yield Settings(model_cache_dir=root / "models", storage_path=root / "unused")


async def test_a_family_job_stores_its_master_and_derivatives_in_the_bucket(
    s3: S3Server, raw: Any, tiny_settings: Settings, room: str
) -> None:
    job = generate_family(room, "facebook-og", generation("a kite over dunes", 11))
    async with storage_on(s3) as storage:
        outcome = await FamilyJobs(tiny_settings, load(), storage).run(job)  # type: ignore[arg-type]
    assert isinstance(outcome, m.FamilyCompleted), outcome
    stored = [outcome.master, *outcome.derivatives]
    assert sorted(i.key for i in stored) == [
        f"{room}/derivatives/facebook-link.webp",
        f"{room}/derivatives/linkedin-share.webp",
        f"{room}/derivatives/og-image.webp",
        f"{room}/masters/facebook-og.webp",
    ]
    for image in stored:
        head = await raw.head_object(Bucket="images", Key=image.key)
        assert head["ContentType"] == "image/webp" and head["ContentLength"] == image.bytes, image.key
        assert head["CacheControl"] == CACHE_CONTROL
        body = await (await raw.get_object(Bucket="images", Key=image.key))["Body"].read()
        assert body[:4] == b"RIFF" and body[8:12] == b"WEBP"
