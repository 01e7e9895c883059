"""Filesystem storage: atomic writes, and keys that never resolve outside the root."""

import asyncio
from pathlib import Path

import pytest

from imagegen.storage import FileStorage, KeyOutsideStorage, derivative_key, master_key


def test_keys_follow_the_architecture():
    assert master_key("hero-sunset-beach", "square") == "hero-sunset-beach/masters/square.webp"
    assert derivative_key("hero-sunset-beach", "og-image") == "hero-sunset-beach/derivatives/og-image.webp"


def test_put_then_get_round_trips_and_leaves_no_temporary_file(tmp_path: Path):
    storage = FileStorage(tmp_path)
    asyncio.run(storage.put("v/masters/square.webp", b"RIFF....WEBP", "image/webp"))
    assert asyncio.run(storage.get("v/masters/square.webp")) == b"RIFF....WEBP"
    assert [p.name for p in (tmp_path / "v/masters").iterdir()] == ["square.webp"]
    assert asyncio.run(storage.get("v/masters/missing.webp")) is None


@pytest.mark.parametrize("key", ["../secret", "v/../../secret", "/etc/passwd", "", "v\\..\\x", "a\x00b"])
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
