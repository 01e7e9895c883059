"""Small helpers for tests that talk to the broker directly, as other services do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition


async def produce(servers: str, topic: str, key: bytes | None, *values: bytes, together: bool = False) -> None:
    """Send `values` one by one, or `together` in one produce request (so a consumer fetches them at once)."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=100 if together else 0)
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


async def read_until(
    servers: str,
    topic: str,
    done: Callable[[list[ConsumerRecord]], bool],
    keep: Callable[[ConsumerRecord], bool] = lambda r: True,
    timeout: float = 120.0,
) -> list[ConsumerRecord]:
    """Every record of `topic` from the beginning that `keep` accepts, once `done` says so."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        while not consumer.partitions_for_topic(topic):
            await consumer.topics()
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen += [r for r in records if keep(r)]
            if done(seen):
                return seen
            await asyncio.sleep(0)
        raise AssertionError(f"{topic}: condition not met in {timeout} s; saw {len(seen)} records")
    finally:
        await consumer.stop()
