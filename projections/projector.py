"""The projector: imagegen.events into the Postgres read model. Its position in each partition is
written in the same transaction as the rows, so a crash or a redelivery never applies an event twice,
and replaying from offset 0 into fresh tables rebuilds the read model."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Iterator

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from projections import migrations, readmodel
from streams import clients, codec, topics
from streams import messages as m

log = logging.getLogger(__name__)
BATCH = 5000  # records of one partition applied in one transaction, at most


async def _advance(conn: psycopg.AsyncConnection, last: ConsumerRecord) -> None:
    await conn.execute(
        """insert into projection_positions (topic, partition, next_offset) values (%s, %s, %s)
           on conflict (topic, partition) do update set next_offset = excluded.next_offset""",
        (last.topic, last.partition, last.offset + 1),
    )


class Projector:
    def __init__(
        self,
        bootstrap_servers: str,
        database_url: str,
        topic: str = topics.EVENTS,
        migrate: bool = True,
        lanes: int = 2,
        share: tuple[int, int] | None = None,
    ) -> None:
        # (i, n): the projector applies the partitions p with p % n == i, and n projectors all of them
        self.share = share
        self.lanes = lanes  # connections applying batches at once
        self.migrate = migrate  # off for a rebuild: its tables are made by projections/rebuild.py
        self.bootstrap_servers = bootstrap_servers
        self.database_url = database_url
        self.topic = topic
        self.applied = 0
        self.outages = 0  # times the database went away and the projector resumed
        self.read_model = readmodel.ReadModel()
        self.ready = asyncio.Event()  # set once migrations are applied

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        parts = await clients.partitions(consumer, self.topic)  # the topic may not exist yet
        return [tp for tp in parts if self.share is None or tp.partition % self.share[1] == self.share[0]]

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
                applied = await self.read_model.apply(conn, [event for _, event in batch])
                await _advance(conn, last)
            self.applied += applied  # not `+= await`: lanes add at once
            return
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
            log.warning("a batch of %d events was refused; applying them one by one", len(batch))
        async with conn.transaction():
            for record, event in batch:
                try:
                    async with conn.transaction():  # a savepoint: a refused event undoes only itself
                        applied = await self.read_model.apply(conn, [event])
                    self.applied += applied
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                    await dead_letter(record, f"{type(event).__name__}: read model refused it: {exc}")
            await _advance(conn, last)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Project until `stop`. When Postgres goes away (a restart, a failover), wait until it answers and
        resume from the positions recorded with the rows: a batch cut short was rolled back with its
        position, so nothing is lost and nothing applied twice."""
        stop = stop or asyncio.Event()
        pause = 0.2
        while True:
            try:
                await self._run(stop)
                return
            except psycopg.OperationalError as exc:
                if stop.is_set():
                    return
                self.outages += 1
                log.warning(
                    "the read model's database does not answer (%s); resuming from the recorded positions once it does",
                    str(exc).strip() or type(exc).__name__,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            pause = min(pause * 2, 5.0)

    async def _run(self, stop: asyncio.Event) -> None:
        async with contextlib.AsyncExitStack() as resources:
            conns = [
                await resources.enter_async_context(
                    await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
                )
                for _ in range(self.lanes)
            ]
            applied = await migrations.apply(conns[0]) if self.migrate else []
            if applied:
                log.info("applied migrations %s", applied)
            for conn in conns:
                await self.read_model.prepare(conn)
            if self.outages:
                log.info("the read model's database answers again")
            self.ready.set()
            resources.enter_context(_few_collections())
            consumer = clients.reader(self.bootstrap_servers, auto_offset_reset="earliest")
            producer = clients.producer(self.bootstrap_servers)
            await consumer.start()
            resources.push_async_callback(consumer.stop)
            await producer.start()
            resources.push_async_callback(producer.stop)
            await self._project(conns, consumer, producer, stop)

    async def _project(
        self,
        conns: list[psycopg.AsyncConnection],
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        stop: asyncio.Event,
    ) -> None:
        partitions = await self._partitions(consumer)
        if not partitions:  # more projectors than partitions: this one has none
            await stop.wait()
            return
        consumer.assign(partitions)
        positions = await self._positions(conns[0])
        for tp in partitions:
            if tp.partition in positions:
                consumer.seek(tp, positions[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        log.info("projecting %s from %s", self.topic, positions or "the beginning")

        async def dead_letter(record: ConsumerRecord, reason: str) -> None:
            await topics.dead_letter(producer, record, reason)

        # One reader fetches and decodes; each lane applies the batches of its own partitions on its
        # own connection. Partitions hold disjoint variations, so lanes never touch the same rows,
        # and while Postgres works on one lane's batch Python folds the next.
        Batch = tuple[list[tuple[ConsumerRecord, m.Event]], ConsumerRecord]
        queues: list[asyncio.Queue[Batch]] = [asyncio.Queue(2) for _ in conns]

        async def read() -> None:
            while True:
                fetched = await consumer.getmany(timeout_ms=200, max_records=BATCH)
                for tp, records in fetched.items():
                    batch = []
                    for i, record in enumerate(records, 1):
                        try:
                            batch.append((record, codec.decode_event(record.value)))
                        except codec.UndecodableMessage as exc:
                            # Dead-lettered before the position moves past it: nothing is lost.
                            await dead_letter(record, str(exc))
                        if i % 500 == 0:
                            await asyncio.sleep(0)  # let the lanes go on meanwhile
                    await queues[tp.partition % len(queues)].put((batch, records[-1]))

        stopping = asyncio.create_task(stop.wait())

        async def lane(conn: psycopg.AsyncConnection, queue: asyncio.Queue[Batch]) -> None:
            # not wait_for(queue.get()): on Python 3.11 its timeout can drop the batch it got
            while True:
                get = asyncio.create_task(queue.get())
                await asyncio.wait([get, stopping], return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()  # the batch stays in the queue
                    return
                batch, last = get.result()
                await self.apply(conn, batch, last, dead_letter)  # a batch begun is finished
                if stop.is_set():
                    return

        reader = asyncio.create_task(read())
        lanes = [asyncio.create_task(lane(conn, queue)) for conn, queue in zip(conns, queues, strict=True)]
        try:
            done, _ = await asyncio.wait([stopping, reader, *lanes], return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                task.result()  # a reader or a lane failed: say why
            reader.cancel()
            await asyncio.gather(*lanes)
        finally:
            for task in (reader, *lanes, stopping):
                task.cancel()
            await asyncio.gather(reader, *lanes, stopping, return_exceptions=True)


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Projecting makes and drops millions of small objects (decoded events, rows): with the
    collector's default thresholds, its collections cost as much as the decoding. Objects that
    live until now are set aside for good, and collections made rare."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
