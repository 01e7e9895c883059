"""`imagegen queue status | list | pause | resume | clear`: what waits and what holds it; an operator's
word to every worker, on imagegen.control. A paused family's jobs, normal and DX, wait in the broker
until it is resumed, across worker restarts. Clearing never deletes history: it posts commands, and
their events say what was given up (a waiting job's variation is cancelled, a failed family abandoned)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from imagegen.config import settings
from streams import clients, topics
from streams.families import load as load_families
from streams.peak import PeakHours


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
    listing = actions.add_parser("list", help="the waiting and running jobs (and with --failed the failed ones)")
    listing.add_argument("families", nargs="*", metavar="FAMILY", help="these families only (default: all)")
    listing.add_argument("--failed", action="store_true", help="list the failed jobs not given up on as well")
    listing.add_argument("--limit", type=int, default=200)
    listing.set_defaults(func=cmd_list)
    clear = actions.add_parser(
        "clear", help="give up on waiting jobs (their variations are cancelled) or failed ones (abandoned)"
    )
    clear.add_argument("families", nargs="*", metavar="FAMILY")
    clear.add_argument("--all", action="store_true", help="every family")
    clear.add_argument("--waiting", action="store_true", help="cancel the variations with a waiting job here")
    clear.add_argument("--failed", action="store_true", help="abandon the failed jobs: they are not retried")
    clear.add_argument("--dry-run", action="store_true", help="list what would be cleared, and post nothing")
    clear.set_defaults(func=cmd_clear)


def cmd_status(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from streams import messages as m
    from streams import operational

    s = settings()
    names = load_families(override=s.families_file).names
    waiting, paused, workers = asyncio.run(_state(names))
    peak = PeakHours.parse(s.peak_hours, s.peak_timezone)
    in_peak = peak.covers(m.utcnow())
    table = Table("family", "normal waiting", "dx waiting", "held", "live workers", box=None)
    for family in names:
        held = "normal: peak hours" if in_peak else "-"
        if paused.get(operational.ALL_FAMILIES) or paused.get(family):
            held = "paused"
        live = "?" if workers is None else str(sum(w["live"] and family in w["families"] for w in workers))
        table.add_row(family, str(waiting[(family, "normal")]), str(waiting[(family, "dx")]), held, live)
    console = Console()
    console.print(table)
    console.print(f"peak hours: {peak}{' (now in them)' if in_peak else ''}")
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


def _named(args: argparse.Namespace, required: bool = True) -> list[str]:
    """The families an invocation names (checked against the table), or every family for --all."""
    table = load_families(override=settings().families_file)
    if required and getattr(args, "all", False) == bool(args.families):
        sys.exit(f"imagegen queue {args.action}: name one or more families, or give --all")
    if unknown := [f for f in args.families if f not in table.names]:
        sys.exit(f"imagegen queue {args.action}: unknown families {unknown}; known: {', '.join(table.names)}")
    return list(dict.fromkeys(args.families)) or list(table.names)


async def _jobs(families: list[str], states: tuple[str, ...], limit: int = 1000) -> list[dict[str, Any]]:
    import psycopg

    from projections import views

    async with await psycopg.AsyncConnection.connect(settings().database_url, connect_timeout=3) as conn:
        return await views.queue_jobs(conn, families, states, limit)


def _print_jobs(jobs: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("state", "family", "variation", "priority", "round", "worker", "for", "error", box=None)
    for j in jobs:
        round_ = f"{j['round']}" + (f" (attempt {j['attempts']})" if j["attempts"] > 1 else "")
        table.add_row(
            j["state"],
            j["family"],
            j["variation"],
            j["priority"],
            round_,
            j["worker"] or "-",
            f"{j['seconds']:.0f} s",
            (j["error"] or "")[:60],
        )
    Console().print(table)


def cmd_list(args: argparse.Namespace) -> None:
    states = ("waiting", "running", "failed") if args.failed else ("waiting", "running")
    jobs = asyncio.run(_jobs(_named(args, required=False), states, args.limit))
    _print_jobs(jobs)
    counts = {s: sum(j["state"] == s for j in jobs) for s in states}
    print(
        ", ".join(f"{n} {s}" for s, n in counts.items())
        + (f" (the first {args.limit})" if len(jobs) == args.limit else "")
    )


def cmd_clear(args: argparse.Namespace) -> None:
    import uuid

    from streams import messages as m

    if not (args.waiting or args.failed):
        sys.exit("imagegen queue clear: say what to clear: --waiting, --failed or both")
    states = (("waiting",) if args.waiting else ()) + (("failed",) if args.failed else ())
    jobs = asyncio.run(_jobs(_named(args), states))
    commands: list[Any] = []
    for vid in dict.fromkeys(j["variationId"] for j in jobs if j["state"] == "waiting"):
        commands.append(m.CancelVariation(command_id=uuid.uuid4(), variation_id=uuid.UUID(vid)))
    for j in jobs:
        if j["state"] == "failed":
            commands.append(
                m.AbandonFamily(command_id=uuid.uuid4(), variation_id=uuid.UUID(j["variationId"]), family=j["family"])
            )
    _print_jobs(jobs)
    cancelled = sum(isinstance(c, m.CancelVariation) for c in commands)
    abandoned = len(commands) - cancelled
    if args.dry_run:
        print(f"would cancel {cancelled} variations and abandon {abandoned} failed jobs (dry run: nothing posted)")
        return
    asyncio.run(_say(commands, topics.COMMANDS))
    print(f"cancelled {cancelled} variations with waiting jobs, abandoned {abandoned} failed jobs")


def cmd_queue(args: argparse.Namespace) -> None:
    from streams import messages as m
    from streams import operational

    named = _named(args)
    names = [operational.ALL_FAMILIES] if args.all else named
    asyncio.run(_say([operational.QueueControl(family=f, paused=args.paused, sent_at=m.utcnow()) for f in names]))
    print(f"{'paused' if args.paused else 'resumed'}: {'every family' if args.all else ', '.join(names)}")


async def _say(messages: list[Any], topic: str = topics.CONTROL) -> None:
    from streams import codec

    s = settings()
    await topics.create_all(
        s.kafka_bootstrap_servers,
        load_families(override=s.families_file),
        s.topic_partitions,
        s.topic_replication,
        attempts=2,
    )
    producer = clients.producer(s.kafka_bootstrap_servers)
    await producer.start()
    try:
        sent = [await producer.send(topic, key=message.key, value=codec.encode(message)) for message in messages]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
