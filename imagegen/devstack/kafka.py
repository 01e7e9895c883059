"""Apache Kafka from its own jars, run with the JDK: one KRaft node (broker and controller in one
process) for the dev stack and the tests, or a cluster of several on one machine for the fault stories.

The jars are the ones `maven` fetched. Every node listens on free loopback ports, formats its storage
on first start and keeps it: a cluster started again on the same folder has the same log. `start()`
returns once every node answers a Metadata request listing the whole cluster; each node is stopped by
its own process id.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from imagegen.devstack import probe
from imagegen.devstack.maven import BrokerError, jars, version
from imagegen.devstack.probe import metadata
from imagegen.devstack.processes import free_ports, port_free, signal_and_wait, tail

log = logging.getLogger(__name__)

# Only what one machine needs differs from Kafka's defaults: internal topics fit one node (or the
# cluster's size), a group forms as soon as its first member joins, and tests may use short sessions.
NODE_SETTINGS = {
    "num.partitions": "1",
    "offsets.topic.num.partitions": "8",
    "transaction.state.log.num.partitions": "4",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "500",
    "auto.create.topics.enable": "false",
    "log.segment.bytes": str(64 * 1024 * 1024),
    "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
    "log.cleaner.backoff.ms": "1000",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
}
# A modest heap and a collector fit for two cores.
JVM_OPTIONS = ("-Xms128m", "-Xmx768m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.server.name = org.apache.kafka
logger.server.level = WARN
"""


@dataclass
class Node:
    """One KRaft node of a cluster: its id, ports and folder; `process` while it runs."""

    node_id: int
    folder: Path
    port: int = 0
    controller_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "kafka.log"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"kafka node {self.node_id} is not running")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Kafka:
    """A KRaft cluster of `nodes` combined broker+controller processes on this machine (one by default),
    its storage under `folder` (a temporary one, removed by `stop()`, when none is given).

    Given a folder, the cluster keeps its log there across starts, and reuses the ports it had when
    they are still free (clients configured with the address keep working)."""

    def __init__(
        self,
        folder: Path | None = None,
        *,
        nodes: int = 1,
        timeout: float = 60.0,
        preferred: tuple[int, int] | None = None,
    ) -> None:
        self._owns_folder = folder is None
        self._preferred = preferred  # (client, controller) ports of a first start, when free
        self.folder = Path(folder).absolute() if folder else Path(tempfile.mkdtemp(prefix="imagegen-kafka-"))
        self.nodes = [Node(i, self.folder / f"node-{i}") for i in range(1, nodes + 1)]
        self._timeout = timeout
        self.ready_s = 0.0

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def pid(self) -> int:
        return self.nodes[0].pid

    @property
    def replication(self) -> int:
        return len(self.nodes)

    def node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    # -- configuration

    def _ports_file(self) -> Path:
        return self.folder / "ports.json"

    def _choose_ports(self) -> None:
        """The first of these whose ports are all free: the last start's, the preferred ones (one node),
        fresh ones."""
        choices: list[list[tuple[int, int]]] = []
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            kept = json.loads(self._ports_file().read_text())
            choices.append([(int(kept[str(n.node_id)][0]), int(kept[str(n.node_id)][1])) for n in self.nodes])
        if self._preferred and len(self.nodes) == 1:
            choices.append([self._preferred])
        chosen = next((c for c in choices if all(port_free(p) for pair in c for p in pair)), None)
        if chosen is None:
            self._fresh_ports()
        else:
            self._use(chosen)

    def _fresh_ports(self) -> None:
        fresh = free_ports(2 * len(self.nodes))
        self._use(list(zip(fresh[::2], fresh[1::2], strict=True)))

    def _use(self, ports: list[tuple[int, int]]) -> None:
        """Give each node its (client, controller) ports, and keep them for the next start."""
        for n, (port, controller) in zip(self.nodes, ports, strict=True):
            n.port, n.controller_port = port, controller
        self._ports_file().write_text(json.dumps({n.node_id: [n.port, n.controller_port] for n in self.nodes}))

    def _configure(self) -> None:
        for n in self.nodes:
            n.folder.mkdir(parents=True, exist_ok=True)
            (n.folder / "server.properties").write_text(self._properties(n))

    def _properties(self, n: Node) -> str:
        voters = ",".join(f"{v.node_id}@127.0.0.1:{v.controller_port}" for v in self.nodes)
        replication = str(min(3, len(self.nodes)))
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(n.node_id),
            # Static voters: a node started again on other ports reads them from here, not its log.
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{n.port},CONTROLLER://127.0.0.1:{n.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{n.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(n.folder / "log"),
            "metadata.log.dir": str(n.folder / "metadata"),
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": str(min(2, len(self.nodes))),
            "default.replication.factor": replication,
            **NODE_SETTINGS,
        }
        if len(self.nodes) > 1:
            settings["share.coordinator.state.topic.replication.factor"] = replication
        if len(self.nodes) >= 3:  # a write counts once two replicas have it: one broker may be lost
            settings["min.insync.replicas"] = "2"
            settings["share.coordinator.state.topic.min.isr"] = "2"
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def _format(self, n: Node, lib: Path, cluster_id: str) -> None:
        """Format a node's storage once; a formatted node keeps its log."""
        if not (n.folder / "metadata" / "meta.properties").is_file():
            properties = str(n.folder / "server.properties")
            done = subprocess.run(
                [*self._java(lib), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", properties],
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            if done.returncode != 0:
                raise BrokerError(f"kafka-storage format failed for node {n.node_id}:\n{done.stdout}{done.stderr}")

    def _java(self, lib: Path) -> list[str]:
        home = os.environ.get("JAVA_HOME")
        java = (home and shutil.which("java", path=str(Path(home) / "bin"))) or shutil.which("java")
        if java is None:
            raise BrokerError(
                "a JDK (17 or newer) is needed to run Apache Kafka: apt-get install openjdk-17-jre-headless"
            )
        logging_file = f"-Dlog4j2.configurationFile={self.folder / 'log4j2.properties'}"
        return [java, *JVM_OPTIONS, logging_file, "-cp", f"{lib}/*"]

    # -- life cycle

    def start(self) -> Kafka:
        started = time.monotonic()
        lib = jars()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stop_stale()
        (self.folder / "log4j2.properties").write_text(LOG4J2)
        cluster_file = self.folder / "cluster.id"
        if not cluster_file.is_file():
            cluster_file.write_text(probe.cluster_id())
        cluster_id = cluster_file.read_text().strip()
        self._choose_ports()
        self._configure()
        with ThreadPoolExecutor(len(self.nodes)) as pool:  # formatting is a JVM start each
            list(pool.map(lambda n: self._format(n, lib, cluster_id), self.nodes))
        atexit.register(self.stop)
        for attempt in range(1, BIND_ATTEMPTS + 1):
            try:
                for n in self.nodes:
                    self._spawn(n, lib)
                self._wait_ready(self.nodes)
                break
            except BrokerError as exc:
                # a port found free was taken before the node bound it (another process's outgoing
                # connection may be given it): start again on fresh ports
                if attempt == BIND_ATTEMPTS or not any(_lost_its_port(n) for n in self.nodes):
                    self.stop()
                    raise
                self._halt()
                log.warning("kafka: a port was taken before it was bound (%s); fresh ports", str(exc).splitlines()[0])
                self._fresh_ports()
                self._configure()
            except BaseException:
                self.stop()
                raise
        self.ready_s = time.monotonic() - started
        log.info("kafka %s ready on %s in %.2fs", version(), self.bootstrap_servers, self.ready_s)
        return self

    def _spawn(self, n: Node, lib: Path) -> None:
        with open(n.log_path, "ab") as out:
            # Own session: a Ctrl-C at the terminal reaches `imagegen dev`, which stops us in order.
            n.process = subprocess.Popen(
                [*self._java(lib), "kafka.Kafka", str(n.folder / "server.properties")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (n.folder / "kafka.pid").write_text(str(n.process.pid))

    def _wait_ready(self, nodes: list[Node]) -> None:
        want = {n.node_id for n in self.nodes if n.running or n in nodes}
        deadline = time.monotonic() + self._timeout
        waiting = list(nodes)
        while waiting:
            n = waiting[0]
            if not n.running:
                raise BrokerError(f"kafka node {n.node_id} exited; {n.log_path}:\n{tail(n.log_path)}")
            with contextlib.suppress(OSError, struct.error, UnicodeDecodeError):
                if {b[0] for b in metadata(n.port)} >= want:
                    waiting.pop(0)
                    continue
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"kafka node {n.node_id} not ready on port {n.port} in {self._timeout:.0f} s; "
                    f"{n.log_path}:\n{tail(n.log_path)}"
                )
            time.sleep(0.05)

    def _stop_stale(self) -> None:
        """Stop nodes left running in this folder by a killed launcher, by their recorded pids, after
        checking that each pid still is a Kafka of this folder (pids get reused)."""
        for n in self.nodes:
            try:
                pid = int((n.folder / "kafka.pid").read_text())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, ValueError):
                continue
            if b"kafka.Kafka" in cmdline and str(n.folder).encode() in cmdline:
                log.warning("stopping the kafka node left running in %s (pid %d)", n.folder, pid)
                signal_and_wait(pid, signal.SIGTERM, 30.0) or signal_and_wait(pid, signal.SIGKILL, 5.0)

    def kill(self, node_id: int) -> None:
        """kill -9 one node (a broker lost)."""
        n = self.node(node_id)
        if n.process is not None:
            n.process.kill()
            n.process.wait()
            n.process = None

    def restart(self, node_id: int) -> None:
        """Start a stopped or killed node again on its ports and log; returns once the cluster lists it."""
        n = self.node(node_id)
        if n.running:
            return
        self._spawn(n, jars())
        self._wait_ready([n])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node: at once when its data is thrown away, else in order (a clean shutdown
        spares the next start a log recovery)."""
        atexit.unregister(self.stop)
        self._halt(timeout)
        if self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _halt(self, timeout: float = 30.0) -> None:
        """Stop every node's process, keeping the folder."""

        def stop_one(n: Node) -> None:
            proc, n.process = n.process, None
            if proc is not None and proc.poll() is None:
                if self._owns_folder:
                    proc.kill()
                else:
                    proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            with contextlib.suppress(OSError):
                (n.folder / "kafka.pid").unlink()

        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(stop_one, self.nodes))

    def __enter__(self) -> Kafka:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


BIND_ATTEMPTS = 3


def _lost_its_port(n: Node) -> bool:
    """Whether the node's last start ended on a port taken under it."""
    with contextlib.suppress(OSError):
        return "Address already in use" in tail(n.log_path, 200)
    return False
