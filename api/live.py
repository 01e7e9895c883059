"""A variation's life as it happens, for server-sent events: one consumer per API process follows
the event log and the progress topic from their ends and hands each message to the streams open for
its variation (the message key). Nothing is committed: a stream shows what happens while it is open,
after a snapshot from the read model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams import clients, topics

log = logging.getLogger(__name__)
FOLLOWED = (topics.EVENTS, topics.PROGRESS)
QUEUE_SIZE = 1000  # per stream; a reader this far behind loses progress, never events

Item = tuple[str, str]  # (SSE event name: the message's type, its JSON)


class LiveFeed:
    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._streams: dict[bytes, set[asyncio.Queue[Item]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.following = asyncio.Event()  # set once the consumer reads from the topics' ends

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @contextlib.contextmanager
    def subscribe(self, variation_id: uuid.UUID) -> Iterator[asyncio.Queue[Item]]:
        key = str(variation_id).encode()
        queue: asyncio.Queue[Item] = asyncio.Queue(QUEUE_SIZE)
        self._streams.setdefault(key, set()).add(queue)
        try:
            yield queue
        finally:
            self._streams[key].discard(queue)
            if not self._streams[key]:
                del self._streams[key]

    async def _run(self) -> None:
        while True:  # the broker may come and go: follow again from the ends
            try:
                await self._follow()
            except KafkaError as exc:
                log.warning("live feed lost the broker (%s); following again", exc)
                self.following.clear()
                await asyncio.sleep(1)

    async def _follow(self) -> None:
        consumer = clients.reader(self.bootstrap_servers)
        await consumer.start()
        try:
            partitions = await _partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)  # resolve the end now, not at the first fetch
            self.following.set()
            while True:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.key in self._streams and record.value:
                            self._hand(record.key, record.value)
        finally:
            await consumer.stop()

    def _hand(self, key: bytes, value: bytes) -> None:
        try:
            kind = json.loads(value).get("type")
        except (ValueError, AttributeError):
            return  # the dead-letter topic is the consumers' business, not a live view's
        if not isinstance(kind, str):
            return
        for queue in self._streams.get(key, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((kind, value.decode()))


async def _partitions(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    return await clients.partitions(consumer, *FOLLOWED, timeout=float("inf"))  # the topics may not be made yet


async def stream(feed: LiveFeed, variation_id: uuid.UUID, snapshot: Any) -> AsyncIterator[dict[str, str]]:
    """A variation's SSE stream: `snapshot` (its read-model view, if it has one yet), then each event
    and denoising step as it happens. `snapshot` is awaited once subscribed, so nothing falls
    between the two; what it already shows may come again as an event."""
    with feed.subscribe(variation_id) as queue:
        view = await snapshot()
        if view is not None:
            yield {"event": "snapshot", "data": json.dumps(view)}
        while True:
            kind, data = await queue.get()
            yield {"event": kind, "data": data}
