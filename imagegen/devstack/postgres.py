"""A private Postgres cluster from the machine's server binaries (or the pgserver wheel's)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from imagegen.devstack.processes import StartError, free_port, pid_alive, port_free, signal_and_wait, tail

log = logging.getLogger(__name__)


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
