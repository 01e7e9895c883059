"""Where images live: a folder (`FileStorage`) or an S3 bucket (`S3Storage`), both meeting one small
protocol (`Storage`: put, get, delete, list, fetch for HTTP, presigned URLs). Below the workers and the
api that use it; it knows nothing of either."""

from __future__ import annotations

from imagegen.config import CACHE_CONTROL, Settings
from storage.files import FileStorage
from storage.objects import (
    Fetched,
    KeyOutsideStorage,
    Storage,
    StorageError,
    StorageUnavailable,
    checked,
    derivative_key,
    master_key,
)
from storage.s3 import S3Storage

__all__ = [
    "CACHE_CONTROL",
    "Fetched",
    "FileStorage",
    "KeyOutsideStorage",
    "S3Storage",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "checked",
    "derivative_key",
    "master_key",
    "open_storage",
]


def open_storage(settings: Settings) -> Storage:
    """The configured backend. An S3 client is made at the storage's `open()` or first use."""
    if settings.storage_backend == "filesystem":
        return FileStorage(settings.storage_path)
    secret = settings.s3_secret_access_key
    return S3Storage(
        settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url,
        public_endpoint_url=settings.s3_public_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
        prefix=settings.s3_prefix,
        cache_control=settings.image_cache_control,
    )
