"""The local stack with no Docker, one module per server: Apache Kafka from its jars (`kafka`, fetched
by `maven`), a private Postgres cluster (`postgres`) and a storage folder; and an S3 server (`s3`) for
the tests of the S3 storage.

One launcher for both `imagegen dev` and the test session fixtures. Every service listens on a free
port on 127.0.0.1 only, `start()` returns only once it answers real requests, and each is stopped by
its own process id (never by name). A stack in a folder of its own keeps the broker's log, the
database and the images there from one start to the next; a temporary one is removed when it stops.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from imagegen.devstack.kafka import Kafka
from imagegen.devstack.postgres import Postgres
from imagegen.devstack.processes import StartError, free_port, pid_alive
from imagegen.devstack.s3 import S3Server

__all__ = ["DevStack", "Kafka", "Postgres", "S3Server", "StartError", "free_port", "pid_alive"]

log = logging.getLogger(__name__)


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
