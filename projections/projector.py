"""The projector: imagegen.events into the Postgres read model. Its position in each partition is
written in the same transaction as the rows, so a crash or a redelivery never applies an event twice,
and replaying from offset 0 into fresh tables rebuilds the read model."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from projections import migrations
from projections.handlers import HANDLERS
from streams import messages as m
from streams import topics

log = logging.getLogger(__name__)


class Projector:
    def __init__(self, bootstrap_servers: str, database_url: str, topic: str = topics.EVENTS) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.database_url = database_url
        self.topic = topic
        self.applied = 0

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        for _ in range(600):
            parts = consumer.partitions_for_topic(self.topic)
            if parts:
                return [TopicPartition(self.topic, p) for p in sorted(parts)]
            await consumer.topics()  # refreshes metadata: the topic may not exist yet
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {self.topic} does not exist")

    async def _positions(self, conn: psycopg.AsyncConnection) -> dict[int, int]:
        cur = await conn.execute(
            "select partition, next_offset from projection_positions where topic = %s", (self.topic,)
        )
        return dict(await cur.fetchall())

    async def apply(self, conn: psycopg.AsyncConnection, events: list[m.Event], last: ConsumerRecord) -> None:
        """One transaction for a batch of one partition: the rows, then the position after `last`."""
        async with conn.transaction(), conn.cursor() as cur:
            for event in events:
                await cur.execute(
                    "insert into applied_events (event_id) values (%s) on conflict do nothing", (event.event_id,)
                )
                if cur.rowcount == 0:
                    continue  # a redelivered event
                await HANDLERS[type(event)](cur, event)
                self.applied += 1
            await cur.execute(
                """insert into projection_positions (topic, partition, next_offset) values (%s, %s, %s)
                   on conflict (topic, partition) do update set next_offset = excluded.next_offset""",
                (last.topic, last.partition, last.offset + 1),
            )

    async def _dead_letter(self, producer: AIOKafkaProducer, record: ConsumerRecord, reason: str) -> None:
        log.warning("dead-lettering %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason)
        await producer.send_and_wait(
            topics.DEAD_LETTER,
            value=record.value,
            key=record.key,
            headers=[
                ("reason", reason.encode()),
                ("topic", record.topic.encode()),
                ("partition", str(record.partition).encode()),
                ("offset", str(record.offset).encode()),
            ],
        )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
        applied = await migrations.apply(conn)
        if applied:
            log.info("applied migrations %s", applied)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers)
        await consumer.start()
        await producer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            positions = await self._positions(conn)
            for tp in partitions:
                if tp.partition in positions:
                    consumer.seek(tp, positions[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            log.info("projecting %s from %s", self.topic, positions or "the beginning")
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=1000)
                for records in batches.values():
                    events = []
                    for record in records:
                        try:
                            events.append(m.decode_event(record.value))
                        except m.UndecodableMessage as exc:
                            # Dead-lettered before the position moves past it: nothing is lost.
                            await self._dead_letter(producer, record, str(exc))
                    await self.apply(conn, events, records[-1])
        finally:
            await consumer.stop()
            await producer.stop()
            await conn.close()
