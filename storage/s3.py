"""Images as objects in an S3 bucket (AWS S3, MinIO, SeaweedFS), through aiobotocore."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

from imagegen.config import CACHE_CONTROL
from storage.objects import Fetched, StorageError, StorageUnavailable, checked

# What a client of ours may see of S3's answer; the rest (server, request ids, owner) stays inside.
_PASSED_HEADERS = ("content-type", "content-length", "content-range", "etag", "last-modified")


async def _chunks(body: Any) -> AsyncIterator[bytes]:
    async with body:  # gives the connection back to the pool, also when the client goes away
        async for chunk in body.iter_chunks(64 * 1024):
            yield chunk


class S3Storage:
    """Objects in one bucket, under an optional key prefix, through one aiobotocore client made at
    `open()` (or at first use) and closed by `close()`."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "",
        cache_control: str = CACHE_CONTROL,
        attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ValueError("bucket: an S3 bucket name is required")
        self.bucket, self.region, self.cache_control = bucket, region, cache_control
        self.endpoint_url, self.public_endpoint_url = endpoint_url, public_endpoint_url or endpoint_url
        self.prefix = checked(prefix.strip("/")) + "/" if prefix.strip("/") else ""
        self._credentials = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
        self._attempts = attempts  # botocore retries throttling, 5xx and lost connections with backoff
        self._client: Any = None
        self._presigner: Any = None
        self._exit = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()

    def _make_client(self, endpoint_url: str | None) -> Any:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import AioSession

        config = AioConfig(
            signature_version="s3v4",  # presigned URLs too (botocore would presign with SigV2)
            s3={"addressing_style": "path"},  # MinIO and SeaweedFS have no bucket subdomains
            retries={"mode": "standard", "max_attempts": self._attempts},
            connect_timeout=5,
            read_timeout=30,
        )
        return AioSession().create_client(
            "s3", endpoint_url=endpoint_url, region_name=self.region, config=config, **self._credentials
        )

    async def open(self) -> None:
        """Make the client and check that the bucket answers with these credentials, so a wrong setting
        stops a service at start rather than at its first image."""
        async with self._lock:
            if self._client is not None:
                return
            try:
                with self._translated(""):
                    client = await self._exit.enter_async_context(self._make_client(self.endpoint_url))
                    presigner = client
                    if self.public_endpoint_url != self.endpoint_url:  # a presigned URL signs the public host
                        presigner = await self._exit.enter_async_context(self._make_client(self.public_endpoint_url))
                    await client.head_bucket(Bucket=self.bucket)
            except BaseException:
                await self._exit.aclose()
                raise
            self._client, self._presigner = client, presigner

    async def close(self) -> None:
        async with self._lock:
            self._client = self._presigner = None
            await self._exit.aclose()

    async def __aenter__(self) -> S3Storage:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _s3(self) -> Any:
        if self._client is None:
            await self.open()
        return self._client

    @contextlib.contextmanager
    def _translated(self, key: str) -> Iterator[None]:
        """botocore's errors as ours, naming the bucket and key: a timeout, a lost connection or a 5xx
        is StorageUnavailable; anything else (access denied, no such bucket) a StorageError."""
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

        where = f"s3://{self.bucket}/{self.prefix}{key}"
        try:
            yield
        except ClientError as exc:
            error = StorageUnavailable if _status(exc.response) >= 500 else StorageError
            raise error(f"{where}: {exc}") from exc
        except (ConnectionError, HTTPClientError) as exc:
            raise StorageUnavailable(f"{where}: {exc}") from exc
        except BotoCoreError as exc:  # no credentials, a bad endpoint URL: configuration
            raise StorageError(f"{where}: {exc}") from exc

    async def put(self, key: str, data: bytes, content_type: str, cache_control: str | None = None) -> None:
        s3 = await self._s3()
        with self._translated(key):
            await s3.put_object(
                Bucket=self.bucket,
                Key=self.prefix + checked(key),
                Body=data,
                ContentType=content_type,
                CacheControl=cache_control or self.cache_control,
            )

    async def _read(self, operation: str, key: str, **params: Any) -> dict[str, Any]:
        """get_object or head_object's answer; a 304, 412, 416 or a missing key (404) is an answer here,
        not an error (a missing bucket is one)."""
        from botocore.exceptions import ClientError

        s3 = await self._s3()
        with self._translated(key):
            try:
                return dict(await getattr(s3, operation)(Bucket=self.bucket, Key=self.prefix + checked(key), **params))
            except ClientError as exc:
                status, code = _status(exc.response), exc.response.get("Error", {}).get("Code")
                if status in (304, 412, 416) or (status == 404 and code in ("NoSuchKey", "404")):
                    return dict(exc.response)
                raise

    async def get(self, key: str) -> bytes | None:
        answer = await self._read("get_object", key)
        if _status(answer) == 404:
            return None
        with self._translated(key):
            async with answer["Body"] as body:
                return bytes(await body.read())

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        with self._translated(key):
            await s3.delete_object(Bucket=self.bucket, Key=self.prefix + checked(key))

    async def list(self, prefix: str = "") -> list[str]:
        """The keys starting with `prefix`, sorted."""
        s3 = await self._s3()
        keys = []
        with self._translated(prefix):
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + checked(prefix, prefix=True)
            )
            async for page in pages:
                keys += [o["Key"].removeprefix(self.prefix) for o in page.get("Contents", [])]
        return sorted(keys)

    async def fetch(
        self,
        key: str,
        *,
        head: bool = False,
        range: str | None = None,
        if_range: str | datetime | None = None,
        if_none_match: str | None = None,
        if_modified_since: datetime | None = None,
    ) -> Fetched | None:
        """The object for an HTTP client, its Range and conditional headers passed to S3, which answers
        them as HTTP does (206, 304, 416). None when there is no such object."""
        params: dict[str, Any] = {}
        if if_none_match:
            params["IfNoneMatch"] = if_none_match
        elif if_modified_since:  # RFC 9110 13.2.2: If-None-Match takes precedence
            params["IfModifiedSince"] = if_modified_since
        if range and not head:
            params["Range"] = range
            # S3 has no If-Range: the range is asked for on the condition that the object still is the
            # one the client holds (If-Match, If-Unmodified-Since); when it is not (412), all of it is.
            if if_range is not None:
                params["IfMatch" if isinstance(if_range, str) else "IfUnmodifiedSince"] = if_range
        answer = await self._read("head_object" if head else "get_object", key, **params)
        status, headers = _status(answer), answer["ResponseMetadata"]["HTTPHeaders"]
        if status == 404:
            return None
        if status == 412:
            return await self.fetch(key, head=head, if_none_match=if_none_match, if_modified_since=if_modified_since)
        if status == 304:
            return Fetched(304, {k: v for k, v in headers.items() if k in ("etag", "last-modified")})
        if status == 416:
            return Fetched(416, {k: v for k, v in headers.items() if k == "content-range"})
        passed = {k: v for k, v in headers.items() if k in _PASSED_HEADERS}
        return Fetched(status, passed, None if head else _chunks(answer["Body"]))

    async def presigned_url(self, key: str, expires_s: int, method: str = "GET") -> str:
        """A URL that lets its holder GET (or HEAD) one object for `expires_s` seconds, signed for the
        public endpoint."""
        await self._s3()
        operation = "head_object" if method == "HEAD" else "get_object"
        params = {"Bucket": self.bucket, "Key": self.prefix + checked(key)}
        with self._translated(key):
            return str(await self._presigner.generate_presigned_url(operation, Params=params, ExpiresIn=expires_s))


def _status(answer: dict[str, Any]) -> int:
    return int(answer.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
