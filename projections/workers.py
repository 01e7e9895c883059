"""Worker heartbeats (imagegen.workers) into the `workers` table, so the api can tell which families a
live worker serves. Heartbeats are idempotent by nature: an older beat never overwrites a newer one."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from streams import clients, codec, operational, topics

log = logging.getLogger(__name__)

UPSERT = """insert into workers (worker, families, models_loaded, device, free_memory_bytes, interval_s, seen_at,
                                 device_memory_total_bytes, device_memory_allocated_bytes)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            on conflict (worker) do update set families = excluded.families,
                models_loaded = excluded.models_loaded, device = excluded.device,
                free_memory_bytes = excluded.free_memory_bytes, interval_s = excluded.interval_s,
                seen_at = excluded.seen_at, device_memory_total_bytes = excluded.device_memory_total_bytes,
                device_memory_allocated_bytes = excluded.device_memory_allocated_bytes
            where workers.seen_at < excluded.seen_at"""


async def record(conn: psycopg.AsyncConnection, beats: list[operational.WorkerHeartbeat]) -> None:
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            UPSERT,
            [
                (
                    b.worker,
                    list(b.families),
                    list(b.models_loaded),
                    b.device,
                    b.free_memory_bytes,
                    b.interval_s,
                    b.sent_at,
                    b.device_memory_total_bytes,
                    b.device_memory_allocated_bytes,
                )
                for b in beats
            ],
        )


async def track(bootstrap_servers: str, database_url: str, stop: asyncio.Event) -> None:
    """Record every heartbeat until `stop`. Beats read while the database does not answer are recorded
    once it does (the newest per worker wins)."""
    conn: psycopg.AsyncConnection | None = None
    consumer = clients.reader(bootstrap_servers)
    await consumer.start()
    try:
        partitions = await clients.partitions(consumer, topics.WORKERS, timeout=float("inf"))
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)  # only the newest beat per worker is kept
        while not stop.is_set():
            beats = []
            for records in (await consumer.getmany(timeout_ms=200, max_records=500)).values():
                for message in records:
                    try:
                        beats.append(codec.decode_heartbeat(message.value))
                    except codec.UndecodableMessage as exc:
                        log.warning("ignoring a heartbeat at %s@%s: %s", message.partition, message.offset, exc)
            pause = 0.2
            while beats and not stop.is_set():
                try:
                    conn = conn or await psycopg.AsyncConnection.connect(database_url, autocommit=True)
                    await record(conn, beats)
                    beats = []
                except psycopg.OperationalError as exc:
                    log.warning("heartbeats not recorded yet, the database does not answer: %s", str(exc).strip())
                    if conn is not None:
                        await conn.close()
                    conn = None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), pause)
                    pause = min(pause * 2, 5.0)
    finally:
        await consumer.stop()
        if conn is not None:
            await conn.close()
