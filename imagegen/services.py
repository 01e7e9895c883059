"""The imagegen processes (api, worker, projector, webhooks) started as children with a given environment,
waited for, supervised (one that exits is said and started again, with backoff), and stopped by their
own process ids. Used by `imagegen dev` and the test fixtures."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    pass


class Services:
    def __init__(self, env: dict[str, str], logs: Path, api_port: int = 8015, families: str = "") -> None:
        self.env = {**os.environ, **env, "API_PORT": str(api_port), "PYTHONUNBUFFERED": "1"}
        if families:
            self.env["WORKER_FAMILIES"] = families
        self.logs = logs
        self.api_port = api_port
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, tuple[str, ...]] = {}
        self.restarts: dict[str, int] = {}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def spawn(self, name: str, *args: str, append: bool = False) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.commands[name] = args
        with (self.logs / f"{name}.log").open("ab" if append else "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "imagegen.cli", *args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.processes[name] = process
        log.info("started %s (pid %d), log %s", name, process.pid, self.logs / f"{name}.log")
        return process

    def make_topics(self) -> None:
        subprocess.run([sys.executable, "-m", "imagegen.cli", "topics"], env=self.env, check=True)

    def start(self, timeout: float = 90.0, make_topics: bool = True) -> Services:
        if make_topics:
            self.make_topics()
        self.spawn("worker", "worker")
        self.spawn("projector", "projector")
        self.spawn("webhooks", "webhooks")
        self.spawn("api", "api")
        self.wait_for_api(timeout)
        self.wait_for_log("worker", "Ready", timeout)
        self.wait_for_log("worker", "default model", timeout)  # loaded, or said why not
        self.wait_for_log("webhooks", "webhook dispatcher ready", timeout)  # its tables exist
        return self

    def check(self) -> None:
        """Raise, with the tail of its log, if a service has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ServiceError(f"{name} exited with {process.returncode}:\n{tail}")

    def wait_for_log(self, name: str, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        path = self.logs / f"{name}.log"
        while time.monotonic() < deadline:
            self.check()
            if text in path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise ServiceError(f"{name} did not log {text!r} within {timeout} s")

    def wait_for_api(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                if httpx.get(f"{self.api_url}/api/images/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ServiceError(f"the api did not answer on {self.api_url} within {timeout} s")

    def tail(self, name: str, lines: int = 15) -> str:
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def supervise(
        self,
        stop: threading.Event,
        *,
        max_restarts: int = 5,
        window_s: float = 60.0,
        say: Callable[[str], None] = print,
    ) -> None:
        """Watch the processes until `stop` is set. One that exits is said at once, with the tail of its
        log, and started again after 1 s, 2 s, 4 s… (at most 30 s); past `max_restarts` restarts of one
        process within `window_s` seconds this raises `ServiceError` (the caller stops the stack)."""
        history: dict[str, deque[float]] = {}
        due: dict[str, float] = {}  # name -> when to start it again
        while not stop.wait(0.2):
            now = time.monotonic()
            for name, process in list(self.processes.items()):
                if name in due or process.poll() is None:
                    continue
                code = process.returncode
                how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
                say(f"imagegen: the {name} (pid {process.pid}) {how}; the end of {self.logs / name}.log:")
                say("\n".join(f"  | {line}" for line in self.tail(name).splitlines()))
                recent = history.setdefault(name, deque())
                recent.append(now)
                while recent and recent[0] < now - window_s:
                    recent.popleft()
                if len(recent) > max_restarts:
                    raise ServiceError(f"the {name} stopped {len(recent)} times in {window_s:.0f} s: giving up")
                delay = min(30.0, 2.0 ** (len(recent) - 1))
                say(f"imagegen: starting the {name} again in {delay:.0f} s")
                due[name] = now + delay
            for name, when in list(due.items()):
                if now >= when:
                    del due[name]
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    started = self.spawn(name, *self.commands[name], append=True)
                    say(f"imagegen: the {name} is running again (pid {started.pid})")

    def stop(self, name: str | None = None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        for key in [name] if name else list(self.processes):
            process = self.processes.pop(key, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
