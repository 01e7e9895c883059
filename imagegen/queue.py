"""`imagegen queue status | pause | resume`: what waits and what holds it; an operator's word to every
worker, on imagegen.control. A paused family's jobs, normal and DX, wait in the broker until it is
resumed, across worker restarts."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from aiokafka import AIOKafkaProducer

from imagegen.config import family_table, settings


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    queue = sub.add_parser("queue", help="hold or release families' jobs on every worker")
    actions = queue.add_subparsers(dest="action", required=True)
    for action, about in (
        ("pause", "hold the jobs (normal and DX) of the families named, or of --all, until resumed"),
        ("resume", "take the jobs of the families named, or of --all, again"),
    ):
        parser = actions.add_parser(action, help=about)
        parser.add_argument("families", nargs="*", metavar="FAMILY")
        parser.add_argument("--all", action="store_true", help="every family")
        parser.set_defaults(func=cmd_queue, paused=action == "pause")
    status = actions.add_parser("status", help="waiting jobs per family and priority, what holds them, live workers")
    status.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from streams import messages as m

    s, names = settings(), family_table().names
    waiting, paused, workers = asyncio.run(_state(names))
    in_peak = s.peak.covers(m.utcnow())
    table = Table("family", "normal waiting", "dx waiting", "held", "live workers", box=None)
    for family in names:
        held = "normal: peak hours" if in_peak else "-"
        if paused.get(m.ALL_FAMILIES) or paused.get(family):
            held = "paused"
        live = "?" if workers is None else str(sum(w["live"] and family in w["families"] for w in workers))
        table.add_row(family, str(waiting[(family, "normal")]), str(waiting[(family, "dx")]), held, live)
    console = Console()
    console.print(table)
    console.print(f"peak hours: {s.peak}{' (now in them)' if in_peak else ''}")
    if workers is None:
        console.print("workers: not known (the read model does not answer)")


async def _state(names: tuple[str, ...]) -> tuple[dict[tuple[str, str], int], dict[str, bool], list[Any] | None]:
    import psycopg

    from projections import views
    from streams import control

    s = settings()
    waiting = await control.waiting_jobs(s.kafka_bootstrap_servers, names)
    paused = await control.paused_now(s.kafka_bootstrap_servers)
    try:
        async with await psycopg.AsyncConnection.connect(s.database_url, connect_timeout=3) as conn:
            workers: list[Any] | None = await views.workers(conn)
    except psycopg.Error:
        workers = None
    return waiting, paused, workers


def cmd_queue(args: argparse.Namespace) -> None:
    from streams import messages as m

    table = family_table()
    if args.all == bool(args.families):
        sys.exit(f"imagegen queue {args.action}: name one or more families, or give --all")
    if unknown := [f for f in args.families if f not in table.names]:
        sys.exit(f"imagegen queue {args.action}: unknown families {unknown}; known: {', '.join(table.names)}")
    names = [m.ALL_FAMILIES] if args.all else list(dict.fromkeys(args.families))
    asyncio.run(_say([m.QueueControl(family=f, paused=args.paused, sent_at=m.utcnow()) for f in names]))
    print(f"{'paused' if args.paused else 'resumed'}: {'every family' if args.all else ', '.join(names)}")


async def _say(controls: list[Any]) -> None:
    from streams import messages as m
    from streams import topics

    s = settings()
    await topics.create_all(s.kafka_bootstrap_servers, family_table(), s.topic_partitions, s.topic_replication)
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers)
    await producer.start()
    try:
        for control in controls:  # one record per request: the test broker miscounts multi-record batches
            await producer.send_and_wait(topics.CONTROL, key=control.key, value=m.encode(control))
    finally:
        await producer.stop()
