"""`imagegen dev` as a user runs it: the whole stack from one command, found by the other commands from a
second terminal, a worker killed with -9 restarted by the launcher, and the history kept for the next run."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from imagegen.devstack import free_port
from tests.builders import create_body, generation_body
from tests.conftest import ARTIFACTS
from tests.waiting import until

SAMPLE = "hero-sunset-beach"  # what `imagegen dev --sample` submits
# what a second terminal has: none of the stack's settings in its environment
STACK_VARIABLES = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "STORAGE_BACKEND", "STORAGE_PATH", "API_PORT")


class Dev:
    """`imagegen dev` in a process of its own, its output collected as it comes."""

    def __init__(self, data: Path, port: int, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
        env |= {
            "TORCH_THREADS": "1",
            "MODEL_CACHE_DIR": str((ARTIFACTS / "models").absolute()),
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imagegen.cli", "dev", "--data", str(data), "--port", str(port), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 240.0) -> re.Match[str]:
        def so_far() -> str:  # its output, while it runs or once it has said so
            out = self.output
            alive = re.search(pattern, out) or self.process.poll() is None
            assert alive, f"imagegen dev exited with {self.process.returncode}:\n{out}"
            return out

        said = until(so_far, f"imagegen dev saying {pattern!r}", timeout, 0.2, done=lambda out: re.search(pattern, out))
        found = re.search(pattern, said)
        assert found  # what `done` saw
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        return self.process.returncode


def cli(data: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """An imagegen command from a second terminal in the folder `imagegen dev` was started from."""
    clean = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES} | {"IMAGEGEN_DATA": str(data)} | env
    return subprocess.run(
        [sys.executable, "-m", "imagegen.cli", *args], env=clean, capture_output=True, text=True, timeout=120
    )


def variation(api: str, name: str, timeout: float = 180.0) -> dict:
    def shown() -> dict | None:
        r = httpx.get(f"{api}/api/images/variations/name/{name}", timeout=10)
        return r.json() if r.status_code == 200 and r.json()["status"] in ("completed", "partial", "failed") else None

    return until(shown, f"variation {name}", timeout, every=0.5)


def test_dev_is_found_by_the_cli_restarts_a_killed_worker_and_keeps_its_history(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    api = f"http://127.0.0.1:{port}"
    # as root, Postgres keeps the cluster of a folder it cannot reach under /var/tmp, named after it
    stand_in = Path("/var/tmp") / f"imagegen-pg-{hashlib.sha1(bytes(data / 'postgres')).hexdigest()[:12]}"
    first = Dev(data, port, "--sample")
    try:
        first.wait_for("serving until interrupted")
        assert variation(api, SAMPLE)["status"] == "completed"

        # a second terminal: `imagegen queue status` finds the stack from its endpoints file
        status = cli(data, "queue", "status")
        assert status.returncode == 0, status.stderr
        assert "square" in status.stdout and "INFO" not in status.stderr

        # the worker dies (-9): the launcher says so with its log's tail, starts it again, and work goes on
        worker = int(first.wait_for(r"started worker \(pid (\d+)\)").group(1))
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        first.wait_for(rf"the worker \(pid {worker}\) was killed by signal 9", 30)
        first.wait_for(r"the worker is running again \(pid \d+\)", 60)
        body = create_body("after-the-kill", generation_body("a kite on a beach", 9))
        assert httpx.post(f"{api}/api/images/variations", json=body, timeout=30).status_code == 202
        assert variation(api, "after-the-kill")["status"] == "completed"
        recovered = time.monotonic() - killed
    finally:
        code = first.stop()
    assert code in (0, 130, 143), first.output[-3000:]
    assert not (data / "stack.json").exists()

    # with no stack running, a command names the address it could not reach, in one line
    nowhere = f"127.0.0.1:{free_port()}"
    refused = cli(data, "queue", "status", KAFKA_BOOTSTRAP_SERVERS=nowhere)
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"imagegen: no Kafka broker answers at {nowhere} (KAFKA_BOOTSTRAP_SERVERS)"

    # the next run shows the first run's variations and serves their images
    second = Dev(data, port)
    try:
        second.wait_for("serving until interrupted")
        names = {v["name"] for v in httpx.get(f"{api}/api/images/variations", timeout=10).json()["items"]}
        assert {SAMPLE, "after-the-kill"} <= names
        image = httpx.get(f"{api}/api/images/{SAMPLE}/square", timeout=10)
        assert image.status_code == 200 and image.headers["content-type"] == "image/webp"
        assert "rebuilding" not in second.output
    finally:
        second.stop()
        shutil.rmtree(stand_in, ignore_errors=True)
    print(
        f"\nimagegen dev: worker killed -9, restarted by the launcher; the next variation completed "
        f"{recovered:.1f} s after the kill; a second run showed {len(names)} variations of the first"
    )
