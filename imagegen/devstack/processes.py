"""Processes and ports on this machine: what every server of the dev stack shares."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path


def free_port() -> int:
    # Racy by nature (free now, maybe not later): starts retry on a new port when the bind fails.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free now (bound all at once, so none repeats)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def pid_alive(pid: int) -> bool:
    """True while the process runs. A zombie counts as gone: the postmaster is not our child, and until
    whoever adopted it reaps it (over a second in some containers) os.kill(pid, 0) still succeeds."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: probe with a signal
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def signal_and_wait(pid: int, sig: int, timeout: float) -> bool:
    """Signal one process by its pid and wait for it to go; True when it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class StartError(RuntimeError):
    """A service did not become ready; the message carries the tail of its log."""


def free_ports_with_twin(count: int, grpc_twin: bool = False) -> list[int]:
    """`count` distinct free ports (all bound at once); with `grpc_twin`, the last one's +10000 is free too."""
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        while len(ports) < count:
            s = held.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
            if grpc_twin and len(ports) == count - 1:
                with contextlib.suppress(OSError, OverflowError):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port + 10000))
                    ports.append(port)
                continue
            ports.append(port)
        return ports
