"""Filesystem storage: atomic writes, listing, and keys that never resolve outside the root. The backend
is chosen by configuration."""

import asyncio
from pathlib import Path

import pytest

from imagegen.config import Settings
from storage import FileStorage, KeyOutsideStorage, S3Storage, derivative_key, master_key, open_storage


def test_keys_follow_the_architecture():
    assert master_key("hero-sunset-beach", "square") == "hero-sunset-beach/masters/square.webp"
    assert derivative_key("hero-sunset-beach", "og-image") == "hero-sunset-beach/derivatives/og-image.webp"


def test_put_then_get_round_trips_and_leaves_no_temporary_file(tmp_path: Path):
    storage = FileStorage(tmp_path)
    asyncio.run(storage.put("v/masters/square.webp", b"RIFF....WEBP", "image/webp"))
    assert asyncio.run(storage.get("v/masters/square.webp")) == b"RIFF....WEBP"
    assert [p.name for p in (tmp_path / "v/masters").iterdir()] == ["square.webp"]
    assert asyncio.run(storage.get("v/masters/missing.webp")) is None


@pytest.mark.parametrize(
    "key", ["../secret", "v/../../secret", "v/../v/x", "/etc/passwd", "", "v\\..\\x", "a\x00b", "v/./x", "v//x"]
)
def test_a_key_outside_the_root_is_refused(tmp_path: Path, key: str):
    with pytest.raises(KeyOutsideStorage):
        FileStorage(tmp_path / "images").path(key)


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.webp").write_bytes(b"secret")
    storage = FileStorage(tmp_path / "images")
    (storage.root / "v").symlink_to(outside)
    with pytest.raises(KeyOutsideStorage):
        storage.path("v/secret.webp")


def test_list_gives_the_keys_under_a_prefix_sorted_without_temporary_files(tmp_path: Path):
    storage = FileStorage(tmp_path)
    keys = ["v/masters/square.webp", "v/derivatives/og-image.webp", "v/derivatives/banner.webp"]
    for key in [*keys, "v2/masters/square.webp"]:
        asyncio.run(storage.put(key, b"RIFF", "image/webp"))
    (tmp_path / "v/masters/.square.webp.part").write_bytes(b"half")  # a write in progress
    assert asyncio.run(storage.list("v/")) == sorted(keys)
    assert asyncio.run(storage.list("v/derivatives/")) == sorted(keys)[:2]
    assert asyncio.run(storage.list("v")) == sorted([*keys, "v2/masters/square.webp"])
    assert asyncio.run(storage.list("nothing/")) == []
    with pytest.raises(KeyOutsideStorage):
        asyncio.run(storage.list("../"))


def test_list_does_not_follow_a_symlink_out_of_the_root(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.webp").write_bytes(b"secret")
    storage = FileStorage(tmp_path / "images")
    asyncio.run(storage.put("v/masters/square.webp", b"RIFF", "image/webp"))
    (storage.root / "v/derivatives").symlink_to(outside)
    (storage.root / "v/masters/og.webp").symlink_to(outside / "secret.webp")
    assert asyncio.run(storage.list()) == ["v/masters/square.webp"]


def test_delete_removes_a_file_and_a_missing_one_is_no_error(tmp_path: Path):
    storage = FileStorage(tmp_path)
    asyncio.run(storage.put("v/masters/square.webp", b"RIFF", "image/webp"))
    asyncio.run(storage.delete("v/masters/square.webp"))
    asyncio.run(storage.delete("v/masters/square.webp"))
    assert asyncio.run(storage.list()) == []


def test_the_configured_backend_is_built(tmp_path: Path):
    assert isinstance(open_storage(Settings(storage_path=tmp_path)), FileStorage)
    s3 = open_storage(Settings(storage_backend="s3", s3_bucket="images", s3_prefix="/brand-a/"))
    assert isinstance(s3, S3Storage) and s3.bucket == "images" and s3.prefix == "brand-a/"
    with pytest.raises(ValueError, match="S3_BUCKET is required"):
        Settings(storage_backend="s3")
