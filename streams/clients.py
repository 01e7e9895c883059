"""The Kafka clients every imagegen process makes, configured in one place.

Producers are idempotent with `acks=all`: a send retried after a lost answer is written once and in
order, and a record counts as sent only once every in-sync replica has it. Consumers read with the
broker's own fetch wait: Apache Kafka answers a fetch as soon as data arrives, so a longer wait only
means fewer idle requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

# Records of aborted transactions (PROCESSING_GUARANTEE=exactly_once) are never read; without
# transactions this reads what it read before.
COMMITTED = {"isolation_level": "read_committed"}


def producer(bootstrap_servers: str, **settings: Any) -> AIOKafkaProducer:
    """An idempotent producer (`acks=all`); `settings` override or add to aiokafka's."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, **{"acks": "all", "enable_idempotence": True, **settings}
    )


def reader(bootstrap_servers: str, *topics: str, **settings: Any) -> AIOKafkaConsumer:
    """A consumer outside any group (it assigns or seeks its partitions itself) that commits nothing."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        **{"group_id": None, "enable_auto_commit": False, "fetch_max_wait_ms": 200, **COMMITTED, **settings},
    )


async def partitions(consumer: AIOKafkaConsumer, *topics: str, timeout: float = 60.0) -> list[TopicPartition]:
    """Every partition of `topics`, once they all exist (waiting up to `timeout` seconds for them to be
    made); raises `TopicMissing` naming those that never appeared.

    A consumer that subscribes to nothing knows no topic's partitions: Kafka answers its first Metadata
    request (for no topic) with none. Tracking the topics makes its client ask for them."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for topic in topics:  # the consumer has no public way to ask for a topic's metadata
            await consumer._client.add_topic(topic)
        found = {t: consumer.partitions_for_topic(t) for t in topics}
        if all(found.values()):
            return [TopicPartition(t, p) for t, ps in found.items() for p in sorted(ps or ())]
        if asyncio.get_running_loop().time() > deadline:
            raise TopicMissing(f"no such topic: {', '.join(t for t, ps in found.items() if not ps)}")
        await asyncio.sleep(0.2)
        await consumer._client.force_metadata_update()


class TopicMissing(LookupError):
    pass
