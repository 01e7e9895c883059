"""The projector: imagegen.events into the Postgres read model. Its position in each partition is
written in the same transaction as the rows, so a crash or a redelivery never applies an event twice,
and replaying from offset 0 into fresh tables rebuilds the read model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from projections import handlers, migrations
from streams import messages as m
from streams import topics

log = logging.getLogger(__name__)


async def _apply(conn: psycopg.AsyncConnection, events: list[m.Event]) -> int:
    """Stage `events` and apply them with one statement per event type and round
    (projections/handlers.py); events already applied (by id) are dropped first. Returns how many
    were new."""
    applied = 0
    async with conn.cursor() as cur, conn.cursor() as counting:
        for statement in handlers.STAGE:
            await cur.execute(statement)
        for part in handlers.phases(events):
            async with cur.copy("copy staged (seq, event_id, type, variation_id, round, e) from stdin") as copy:
                for seq, event in enumerate(part):
                    row = (seq, event.event_id, event.type, event.variation_id, handlers.round_of(event))  # type: ignore[attr-defined]
                    await copy.write_row((*row, event.model_dump_json()))
            staged = {(handlers.round_of(event), type(event).__name__) for event in part}
            async with conn.pipeline():  # one round trip for the batch's statements
                if len(part) >= 100:  # a temporary table has no statistics: without them, big joins scan
                    await cur.execute("analyze staged")
                await cur.execute("delete from staged s using applied_events a where a.event_id = s.event_id")
                await cur.execute("delete from staged s using staged t where t.event_id = s.event_id and t.seq < s.seq")
                await counting.execute("insert into applied_events (event_id) select event_id from staged")
                for round_ in sorted({r for r, _ in staged}):
                    for types, handler in handlers.HANDLERS:
                        if any((round_, t) in staged for t in types):
                            await handler(cur, {"round": round_})
                await cur.execute("delete from staged")
            applied += counting.rowcount
    return applied


async def _advance(conn: psycopg.AsyncConnection, last: ConsumerRecord) -> None:
    await conn.execute(
        """insert into projection_positions (topic, partition, next_offset) values (%s, %s, %s)
           on conflict (topic, partition) do update set next_offset = excluded.next_offset""",
        (last.topic, last.partition, last.offset + 1),
    )


class Projector:
    def __init__(
        self, bootstrap_servers: str, database_url: str, topic: str = topics.EVENTS, migrate: bool = True
    ) -> None:
        self.migrate = migrate  # off for a rebuild: its tables are made by projections/rebuild.py
        self.bootstrap_servers = bootstrap_servers
        self.database_url = database_url
        self.topic = topic
        self.applied = 0
        self._analyzed_at = 0
        self.ready = asyncio.Event()  # set once migrations are applied

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

    async def apply(
        self,
        conn: psycopg.AsyncConnection,
        batch: list[tuple[ConsumerRecord, m.Event]],
        last: ConsumerRecord,
        dead_letter: Callable[[ConsumerRecord, str], Awaitable[None]],
    ) -> None:
        """One transaction for a batch of one partition: the rows, then the position after `last`.
        An event the read model refuses (a constraint) is dead-lettered, not retried forever: the
        batch is then applied again one event at a time to find it."""
        try:
            async with conn.transaction():
                self.applied += await _apply(conn, [event for _, event in batch])
                await _advance(conn, last)
            await self._keep_statistics(conn)
            return
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
            log.warning("a batch of %d events was refused; applying them one by one", len(batch))
        async with conn.transaction():
            for record, event in batch:
                try:
                    async with conn.transaction():  # a savepoint: a refused event undoes only itself
                        self.applied += await _apply(conn, [event])
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                    await dead_letter(record, f"{type(event).__name__}: read model refused it: {exc}")
            await _advance(conn, last)

    async def _keep_statistics(self, conn: psycopg.AsyncConnection) -> None:
        """Analyze the read model each time it has grown by a fifth. A replay grows it faster than
        autovacuum looks, and with stale statistics the batch statements' joins scan whole tables."""
        if self.applied >= self._analyzed_at * 1.2 + 1000:
            await conn.execute("analyze variations, families, derivatives, applied_events")
            self._analyzed_at = self.applied

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers)
        async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn:
            applied = await migrations.apply(conn) if self.migrate else []
            if applied:
                log.info("applied migrations %s", applied)
            self.ready.set()
            await consumer.start()
            try:
                await producer.start()
                await self._project(conn, consumer, producer, stop)
            finally:
                await consumer.stop()
                await producer.stop()

    async def _project(
        self,
        conn: psycopg.AsyncConnection,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        stop: asyncio.Event,
    ) -> None:
        partitions = await self._partitions(consumer)
        consumer.assign(partitions)
        positions = await self._positions(conn)
        for tp in partitions:
            if tp.partition in positions:
                consumer.seek(tp, positions[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        log.info("projecting %s from %s", self.topic, positions or "the beginning")

        async def dead_letter(record: ConsumerRecord, reason: str) -> None:
            await topics.dead_letter(producer, record, reason)

        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            for records in batches.values():
                batch = []
                for record in records:
                    try:
                        batch.append((record, m.decode_event(record.value)))
                    except m.UndecodableMessage as exc:
                        # Dead-lettered before the position moves past it: nothing is lost.
                        await dead_letter(record, str(exc))
                await self.apply(conn, batch, records[-1], dead_letter)
