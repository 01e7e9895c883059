"""The dev stack starts real services on free loopback ports, and leaves nothing running behind it."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from imagegen.devstack import DevStack, kafka_metadata, pid_alive

TOPIC = "devstack.check"


async def _roundtrip(bootstrap: str) -> tuple[set[int], tuple[bytes | None, bytes | None, int]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(TOPIC, b"hello", key=b"variation-1")
    finally:
        await producer.stop()
    # No group: every partition is assigned at once, with no (slow, on Tansu) group join.
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 10)
        partitions = consumer.partitions_for_topic(TOPIC) or set()
    finally:
        await consumer.stop()
    assert msg.partition == sent.partition and msg.offset == sent.offset
    return partitions, (msg.key, msg.value, msg.partition)


def _assert_gone(*pids: int) -> None:
    # Not running any more (a zombie counts as gone)...
    assert not [p for p in pids if pid_alive(p)]
    # ...and, once the process that adopted the postmaster has reaped it, gone for os.kill too.
    deadline = time.monotonic() + 5
    left = list(pids)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                left.remove(pid)
        time.sleep(0.05)
    assert not left, f"still present: {left}"


def test_stack_serves_kafka_and_postgres_and_stops_clean() -> None:
    with DevStack(partitions=3) as stack:
        env = stack.env()
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == stack.bootstrap_servers
        assert env["DATABASE_URL"] == stack.database_url == stack.postgres.url
        assert env["TOPIC_PARTITIONS"] == "3" and env["STORAGE_BACKEND"] == "filesystem"
        assert Path(env["STORAGE_PATH"]) == stack.storage_path and stack.storage_path.is_dir()
        assert stack.bootstrap_servers.startswith("127.0.0.1:")

        partitions, (key, value, _) = asyncio.run(_roundtrip(stack.bootstrap_servers))
        assert partitions == {0, 1, 2}
        assert (key, value) == (b"variation-1", b"hello")

        with psycopg.connect(stack.database_url) as conn:
            assert conn.execute("select 1, current_database()").fetchone() == (1, "imagegen")
            conn.execute("create table kept (x int)")
            conn.execute("insert into kept values (42)")

        old_pid, url = stack.postgres.pid, stack.database_url
        stack.postgres.restart()
        assert stack.database_url == url and stack.postgres.pid != old_pid
        assert not pid_alive(old_pid)
        with psycopg.connect(stack.database_url) as conn:
            assert conn.execute("select x from kept").fetchone() == (42,)

        pids, root = (stack.broker.pid, stack.postgres.pid), stack.root
    _assert_gone(*pids)
    assert not root.exists()  # a temporary root is removed
    stack.stop()  # idempotent


def test_two_stacks_at_once_use_their_own_ports(tmp_path: Path) -> None:
    # tmp_path is 0700 under /tmp/pytest-of-root: as root, Postgres must move to a folder of its own.
    with DevStack() as a, DevStack(root=tmp_path / "dev") as b:
        ports = [int(s.bootstrap_servers.rsplit(":", 1)[1]) for s in (a, b)]
        ports += [s.postgres.port for s in (a, b)]
        assert len(set(ports)) == 4
        for stack, port in zip((a, b), ports, strict=False):
            assert kafka_metadata(port) == ("127.0.0.1", port)  # each advertises its own listener
            with psycopg.connect(stack.database_url) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
        assert b.storage_path == tmp_path / "dev" / "images" and b.storage_path.is_dir()
        pids = [a.broker.pid, a.postgres.pid, b.broker.pid, b.postgres.pid]
        pg_folder = b.postgres.folder
    _assert_gone(*pids)
    assert (tmp_path / "dev").is_dir()  # a given root is kept
    if os.geteuid() == 0 and not pg_folder.is_relative_to(tmp_path):
        assert not pg_folder.exists()  # the stand-in folder under /tmp is removed
