"""Where the running dev stack is: `imagegen dev` writes its endpoints to `stack.json` in its data
folder, and every other `imagegen` command reads them there unless an environment variable says
otherwise, so `imagegen queue status` or `imagegen generate` from a second terminal find the stack."""

from __future__ import annotations

import json
import os
from pathlib import Path

from imagegen.devstack.processes import pid_alive

FILE = "stack.json"


def data_folder() -> Path:
    """The dev stack's data folder: IMAGEGEN_DATA, else `data` under the current folder (`imagegen dev
    --data` writes it)."""
    return Path(os.environ.get("IMAGEGEN_DATA", "data"))


def write(folder: Path, settings: dict[str, str]) -> Path:
    """Record the running stack's settings (environment names to values), with this process's id."""
    path = folder / FILE
    path.write_text(json.dumps({"pid": os.getpid(), "settings": settings}, indent=2) + "\n")
    return path


def remove(folder: Path) -> None:
    (folder / FILE).unlink(missing_ok=True)


def read(folder: Path) -> dict[str, str]:
    """The settings of the stack running from `folder`; none when there is none, or its launcher is gone."""
    try:
        recorded = json.loads((folder / FILE).read_text())
        pid, settings = int(recorded["pid"]), dict(recorded["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {str(k): str(v) for k, v in settings.items()} if pid_alive(pid) else {}


def apply(folder: Path | None = None) -> dict[str, str]:
    """Put the running stack's settings into the environment where no variable is set; returns those used."""
    used = {k: v for k, v in read(folder or data_folder()).items() if k not in os.environ}
    os.environ.update(used)
    return used
