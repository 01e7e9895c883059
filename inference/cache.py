"""Folders built once on disk (the tiny model, SDXL's configs), atomically: built into a temporary
folder beside the target and renamed into place, so a reader never sees half of one and two racing
builders agree."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def build_once(path: Path, write: Callable[[Path], None]) -> Path:
    """`path` as `write` fills it, unless it is there already (its model_index.json marks it done)."""
    path = Path(path)
    if (path / "model_index.json").is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(staging)
        try:
            staging.rename(path)
        except OSError:
            if not (path / "model_index.json").is_file():
                raise
            # another process built it first: the builds are deterministic, theirs is ours
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
