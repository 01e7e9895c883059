"""Rebuilding the read model without downtime: `imagegen projections rebuild`.

The event topic is replayed from offset 0 into fresh copies of the read-model tables in a schema of
their own, while the live tables keep serving and the live projector keeps projecting. Once the
replay has caught up, the live tables are locked (readers wait a moment; none fails), the replay
takes what came meanwhile, and the fresh tables replace the live ones in the same transaction. The
live projector goes on with them: events it applies again are dropped by their ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from projections.pool import ProjectorPool, default_processes
from streams import clients, topics

log = logging.getLogger(__name__)

# The tables the event log rebuilds, parents first. Others (workers, webhooks) are left alone.
TABLES = (
    "variations",
    "families",
    "derivatives",
    "rejections",
    "set_choices",
    "applied_events",
    "projection_positions",
)
SCHEMA = "imagegen_rebuild"
LOCK_TIMEOUT = "5s"  # the swap waits this long for in-flight writes, then tries again

Progress = Callable[[int, int, float], None]  # offsets replayed, offsets the live tables hold, seconds


@dataclass(frozen=True)
class Rebuilt:
    events: int
    seconds: float
    old_schema: str | None  # where the replaced tables are, when kept


async def rebuild(
    bootstrap_servers: str,
    database_url: str,
    topic: str = topics.EVENTS,
    progress: Progress | None = None,
    keep_old: bool = False,
    processes: int | None = None,
) -> Rebuilt:
    """Replay `topic` into fresh tables with `processes` projectors (default: one per core, at most
    eight) and put them in place of the live ones."""
    began = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await _fresh_tables(conn, topic)
        fresh = make_conninfo(database_url, options=f"-c search_path={SCHEMA},public")
        projector = ProjectorPool(bootstrap_servers, fresh, topic, processes or default_processes())
        stop = asyncio.Event()
        replay = asyncio.create_task(projector.run(stop))
        try:
            await _until_caught_up(conn, topic, replay, began, progress)
            old = await _swap(conn, topic, replay, stop)
        finally:
            stop.set()
            await replay
        if not keep_old:
            await conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(old)))
    return Rebuilt(projector.applied, time.perf_counter() - began, old if keep_old else None)


async def _fresh_tables(conn: psycopg.AsyncConnection, topic: str) -> None:
    """Empty copies of the live tables (columns, defaults, constraints, indexes, foreign keys) in SCHEMA."""
    schema = sql.Identifier(SCHEMA)
    await conn.execute(sql.SQL("drop schema if exists {} cascade").format(schema))
    await conn.execute(sql.SQL("create schema {}").format(schema))
    for table in TABLES:
        await conn.execute(
            sql.SQL("create table {}.{} (like public.{} including all)").format(
                schema, sql.Identifier(table), sql.Identifier(table)
            )
        )
    cur = await conn.execute(
        """select c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
           from pg_constraint c join pg_class t on t.oid = c.conrelid join pg_namespace n on n.oid = t.relnamespace
           where c.contype = 'f' and n.nspname = 'public' and t.relname = any(%s)""",
        (list(TABLES),),
    )
    for table, name, definition in await cur.fetchall():
        # the definition names the parent unqualified: in SCHEMA's search path, it is the fresh parent
        await conn.execute(
            sql.SQL("set search_path = {}, public; alter table {}.{} add constraint {} {}; reset search_path").format(
                schema, schema, sql.Identifier(table.split(".")[-1]), sql.Identifier(name), sql.SQL(definition)
            )
        )
    # positions of other topics are not this replay's to rebuild
    await conn.execute(
        sql.SQL(
            "insert into {}.projection_positions select * from public.projection_positions where topic <> %s"
        ).format(schema),
        (topic,),
    )


async def _positions(conn: psycopg.AsyncConnection, schema: str, topic: str) -> dict[int, int]:
    cur = await conn.execute(
        sql.SQL("select partition, next_offset from {}.projection_positions where topic = %s").format(
            sql.Identifier(schema)
        ),
        (topic,),
    )
    return dict(await cur.fetchall())


async def _behind(conn: psycopg.AsyncConnection, topic: str) -> tuple[int, int]:
    """(events the replay has reached, events the live tables hold), summed over partitions."""
    live, fresh = await _positions(conn, "public", topic), await _positions(conn, SCHEMA, topic)
    return sum(min(fresh.get(p, 0), n) for p, n in live.items()), sum(live.values())


async def _until_caught_up(
    conn: psycopg.AsyncConnection, topic: str, replay: asyncio.Task[None], began: float, progress: Progress | None
) -> None:
    while True:
        reached, held = await _behind(conn, topic)
        if progress:
            progress(reached, held, time.perf_counter() - began)
        if reached >= held:
            return
        if replay.done():
            replay.result()  # the replay failed: say why
            raise RuntimeError("the replay stopped before it caught up")
        await asyncio.sleep(0.2)


async def _swap(conn: psycopg.AsyncConnection, topic: str, replay: asyncio.Task[None], stop: asyncio.Event) -> str:
    """Lock the live tables against writes, let the replay reach what they hold, and put the fresh
    tables in their place, in one transaction. Returns the schema the old tables went to."""
    old = f"imagegen_replaced_{int(time.time())}"
    live = sql.SQL(", ").join(sql.SQL("public.{}").format(sql.Identifier(t)) for t in TABLES)
    while True:
        try:
            async with conn.transaction():
                await conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
                # no live write can commit from here on, and readers still read
                await conn.execute(sql.SQL("lock table {} in exclusive mode").format(live))
                while (behind := await _behind(conn, topic))[0] < behind[1]:
                    if replay.done():
                        replay.result()
                        raise RuntimeError("the replay stopped during the swap")
                    await asyncio.sleep(0.05)
                stop.set()
                await replay  # its last batch is committed: the fresh tables hold all the live ones do
                await conn.execute(sql.SQL("create schema {}").format(sql.Identifier(old)))
                for table in TABLES:  # readers wait from here to the commit: a few milliseconds
                    name = sql.Identifier(table)
                    await conn.execute(sql.SQL("alter table public.{} set schema {}").format(name, sql.Identifier(old)))
                    await conn.execute(
                        sql.SQL("alter table {}.{} set schema public").format(sql.Identifier(SCHEMA), name)
                    )
                await conn.execute(sql.SQL("drop schema {}").format(sql.Identifier(SCHEMA)))
            return old
        except psycopg.errors.LockNotAvailable:
            log.info("the live tables are busy; trying the swap again")


async def past_the_log(
    bootstrap_servers: str, database_url: str, topic: str = topics.EVENTS
) -> dict[int, tuple[int, int]]:
    """Partitions whose recorded position lies past the end of the log, as partition -> (position, end):
    the read model describes events the log no longer has (the broker's log was lost or replaced), so
    it must be rebuilt from the log rather than served."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute("select to_regclass('projection_positions') is not null")
        if not (await cur.fetchone() or (False,))[0]:
            return {}
        positions = await _positions(conn, "public", topic)
    if not positions:
        return {}
    consumer = clients.reader(bootstrap_servers)
    await consumer.start()
    try:
        try:
            ends = await consumer.end_offsets(await clients.partitions(consumer, topic, timeout=5.0))
        except clients.TopicMissing:
            ends = {}
    finally:
        await consumer.stop()
    end = {tp.partition: offset for tp, offset in ends.items()}
    return {p: (at, end.get(p, 0)) for p, at in positions.items() if at > end.get(p, 0)}


async def forget(database_url: str) -> None:
    """Empty the tables the event log rebuilds, in one transaction: a projector started next replays the
    log from offset 0 into them. For a read model past the log (`past_the_log`), which a rebuild beside
    the live tables could never catch up with."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute(sql.SQL("truncate {}").format(sql.SQL(", ").join(map(sql.Identifier, TABLES))))
