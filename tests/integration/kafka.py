"""Small helpers for tests that talk to the broker directly, as other services do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams import clients
from tests.waiting import until_async

_MADE: set[tuple[str, str]] = set()  # (servers, topic) known to exist: one admin round trip per topic


async def create_topic(servers: str, topic: str, partitions: int = 1) -> None:
    """Make `topic` unless it exists (the brokers make none on first use, as in production)."""
    if (servers, topic) in _MADE:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    _MADE.add((servers, topic))


async def produce(servers: str, topic: str, key: bytes | None, *values: bytes, together: bool = False) -> None:
    """Send `values` one by one, or `together` in one produce request (so a consumer fetches them at once),
    making the topic first when it does not exist."""
    await create_topic(servers, topic)
    producer = clients.producer(servers, linger_ms=100 if together else 0)
    await producer.start()
    try:
        if together:
            sent = [await producer.send(topic, key=key, value=value) for value in values]
            await producer.flush()
            await asyncio.gather(*sent)
        else:
            for value in values:
                await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()


class _Read(list[ConsumerRecord]):
    """The records read so far: a wait that fails says how many, not all of them."""

    def __repr__(self) -> str:
        return f"{len(self)} records"


async def read_until(
    servers: str,
    topic: str,
    done: Callable[[list[ConsumerRecord]], bool],
    keep: Callable[[ConsumerRecord], bool] = lambda r: True,
    timeout: float = 120.0,
) -> list[ConsumerRecord]:
    """Every record of `topic` from the beginning that `keep` accepts, once `done` says so."""
    consumer = clients.reader(servers)
    await consumer.start()
    try:
        parts = await clients.partitions(consumer, topic)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen = _Read()

        async def read() -> list[ConsumerRecord]:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.extend(r for r in records if keep(r))
            return seen

        return list(await until_async(read, f"{topic}: the records awaited", timeout, every=0, done=done))
    finally:
        await consumer.stop()
