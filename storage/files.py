"""Images as files under one folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import tempfile
from datetime import datetime
from pathlib import Path

from storage.objects import Fetched, KeyOutsideStorage, checked


class FileStorage:
    """Files under one root. Writes are atomic (temp file + rename) so a reader never sees half an
    image, and a key never resolves outside the root, symlinks included."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        path = (self.root / checked(key)).resolve()
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

    async def put(self, key: str, data: bytes, content_type: str, cache_control: str | None = None) -> None:
        # A folder keeps no headers: the api sets Content-Type and Cache-Control when it serves.
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes | None:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def _list(self, prefix: str) -> list[str]:
        top = self.root / checked(prefix, prefix=True).rpartition("/")[0]
        keys = []
        for folder, _dirs, files in os.walk(top):  # symlinked folders are not entered
            for name in files:
                key = (Path(folder) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix) and not (name.startswith(".") and name.endswith(".part")):
                    with contextlib.suppress(KeyOutsideStorage):
                        self.path(key)  # a symlink out of the root is not ours to list
                        keys.append(key)
        return sorted(keys)

    async def list(self, prefix: str = "") -> list[str]:
        """The keys starting with `prefix`, sorted."""
        return await asyncio.to_thread(self._list, prefix)

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
        """The file itself: the server answers Range and the conditions from the file (a sendfile, with
        the ETag of its size and time). None when there is no such regular file."""
        path = self.path(key)  # symlinks resolved: one leading out of the root raises
        try:
            found = path.stat()
        except OSError:
            return None
        return Fetched(200, {}, file=path) if stat.S_ISREG(found.st_mode) else None

    async def presigned_url(self, key: str, expires_s: int, method: str = "GET") -> str | None:
        return None  # a folder has no URLs of its own: the api serves its files

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass
