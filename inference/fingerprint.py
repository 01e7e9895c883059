"""A fingerprint of a model's weights on disk, so an event can say which weights drew its pixels and a
regenerate can warn when they changed. It reads each weight file's size and its first and last MiB, not
the whole of several gigabytes: enough to tell apart any two checkpoints a deployment would swap."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")
SAMPLE = 1 << 20


def _weight_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def fingerprint(path: Path) -> str:
    files = _weight_files(path)
    if not files:
        raise FileNotFoundError(f"no weight files under {path}")
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path) if path.is_dir() else file.name}:{size}:".encode())
        with file.open("rb") as f:
            digest.update(f.read(SAMPLE))
            if size > 2 * SAMPLE:
                f.seek(-SAMPLE, 2)
                digest.update(f.read(SAMPLE))
    return "sha256:" + digest.hexdigest()[:32]
