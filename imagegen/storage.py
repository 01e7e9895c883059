"""Where images live. Keys: `{variation}/masters/{family}.webp`, `{variation}/derivatives/{name}.webp`."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path


class StorageError(Exception):
    pass


class KeyOutsideStorage(StorageError):
    pass


def master_key(variation: str, family: str, ext: str = "webp") -> str:
    return f"{variation}/masters/{family}.{ext}"


def derivative_key(variation: str, name: str, ext: str = "webp") -> str:
    return f"{variation}/derivatives/{name}.{ext}"


class FileStorage:
    """Files under one root. Writes are atomic (temp file + rename) so a reader never sees half an
    image, and a key never resolves outside the root, symlinks included."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not key or key.startswith("/") or "\\" in key or "\x00" in key:
            raise KeyOutsideStorage(key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise KeyOutsideStorage(key)
        return path

    def _put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes | None:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
