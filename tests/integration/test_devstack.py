"""The dev stack starts real services on free loopback ports, and leaves nothing running behind it."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from imagegen.devstack import DevStack, pid_alive
from imagegen.devstack.probe import metadata
from projections.rebuild import forget, past_the_log
from streams import clients, codec, families, topics
from tests.integration.kafka import produce
from tests.integration.test_projector import history, project, rows
from tests.waiting import until

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
    # No group: every partition is assigned at once.
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
    def present() -> list[int]:
        left = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                left.append(pid)
            except ProcessLookupError:
                pass
        return left

    until(present, "the processes reaped", 5, every=0.05, done=lambda left: not left)


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
            assert metadata(port) == [(1, "127.0.0.1", port)]  # each advertises its own listener
            with psycopg.connect(stack.database_url) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
        assert b.storage_path == tmp_path / "dev" / "images" and b.storage_path.is_dir()
        pids = [a.broker.pid, a.postgres.pid, b.broker.pid, b.postgres.pid]
        pg_folder = b.postgres.folder
    _assert_gone(*pids)
    assert (tmp_path / "dev").is_dir()  # a given root is kept
    shutil.rmtree(pg_folder, ignore_errors=True)  # as root, a stand-in under /var/tmp, kept for the next start


async def _read_all(bootstrap: str) -> list[bytes | None]:
    consumer = clients.reader(bootstrap, TOPIC, auto_offset_reset="earliest")
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        return [r.value for records in batches.values() for r in records]
    finally:
        await consumer.stop()


def test_a_stack_in_a_folder_keeps_its_log_database_and_images_until_started_fresh(tmp_path: Path) -> None:
    root = tmp_path / "dev"
    # the first run: a record in the log, a row in the database, an image on disk
    with DevStack(root=root, partitions=1) as first:
        asyncio.run(_roundtrip(first.bootstrap_servers))
        with psycopg.connect(first.database_url) as conn:
            conn.execute("create table kept (x int)")
            conn.execute("insert into kept values (42)")
        (first.storage_path / "kept.webp").write_bytes(b"RIFF")
        servers, pg_folder = first.bootstrap_servers, first.postgres.folder
    # the second run finds all three, on the same broker address
    with DevStack(root=root, partitions=1) as second:
        assert second.bootstrap_servers == servers
        assert asyncio.run(_read_all(second.bootstrap_servers)) == [b"hello"]
        with psycopg.connect(second.database_url) as conn:
            assert conn.execute("select x from kept").fetchone() == (42,)
        assert (second.storage_path / "kept.webp").read_bytes() == b"RIFF"
    # a fresh start forgets them
    with DevStack(root=root, partitions=1, fresh=True) as fresh:

        async def topic_names() -> list[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=fresh.bootstrap_servers)
            await admin.start()
            try:
                return list(await admin.list_topics())
            finally:
                await admin.close()

        assert TOPIC not in asyncio.run(topic_names())
        with psycopg.connect(fresh.database_url) as conn:
            assert conn.execute("select to_regclass('kept')").fetchone() == (None,)
        assert not (fresh.storage_path / "kept.webp").exists()
    shutil.rmtree(pg_folder, ignore_errors=True)


async def test_a_read_model_past_the_log_is_noticed_and_rebuilt_from_the_log() -> None:
    # the read model of a log that was then lost: its positions lie past the end of the new, empty log
    with DevStack(partitions=1) as stack:
        servers, url = stack.bootstrap_servers, stack.database_url
        await topics.create_all(servers, families.load(), 1)
        events = history("lost-log")
        for event in events:
            await produce(servers, topics.EVENTS, event.key, codec.encode(event))
        await project(stack, url, topics.EVENTS, len(events))
        assert len((await rows(url))["variations"]) == 1
        assert await past_the_log(servers, url) == {}  # in step with its log

        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            await admin.delete_topics([topics.EVENTS])
            await asyncio.sleep(1)  # the deletion settles before the topic is made again
        finally:
            await admin.close()
        await topics.create_all(servers, families.load(), 1)
        assert await past_the_log(servers, url) == {0: (len(events), 0)}

        await forget(url)  # what `imagegen dev` does then, before it starts the projector
        since = history("after-the-loss")
        for event in since:
            await produce(servers, topics.EVENTS, event.key, codec.encode(event))
        await project(stack, url, topics.EVENTS, len(since))
        assert [v[2] for v in (await rows(url))["variations"]] == ["after-the-loss"]  # what the log holds
        assert await past_the_log(servers, url) == {}


def test_a_new_cluster_id_never_starts_with_a_dash_which_the_storage_tool_would_take_for_an_option() -> None:
    from imagegen.devstack.probe import cluster_id

    made = [cluster_id() for _ in range(5000)]  # 1 in 64 would start with '-' if nothing kept it off
    assert not [m for m in made if m.startswith("-")] and {len(m) for m in made} == {22}


def test_a_port_taken_between_its_choice_and_its_bind_is_given_up_for_fresh_ones(monkeypatch) -> None:
    import socket

    from imagegen.devstack import kafka

    with socket.socket() as taken:  # a port the node is given, then finds in use when it binds
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(kafka, "port_free", lambda p: True)  # the race: free when chosen
        node = kafka.Kafka(preferred=(port, kafka.free_ports(1)[0])).start()
        try:
            assert node.nodes[0].port != port and metadata(node.nodes[0].port)
            assert "Address already in use" in node.nodes[0].log_path.read_text()  # the first try's end
        finally:
            node.stop()
