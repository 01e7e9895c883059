"""The `imagegen` console script: run each process, or the whole stack on one machine."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import NoReturn

import httpx
import psycopg
import psycopg.conninfo
from aiokafka.errors import KafkaConnectionError

from imagegen import dev, endpoints, generate, queue, winner
from imagegen.config import settings
from streams import logs
from streams.families import FamilyTable, FamilyTableError
from streams.families import load as load_families
from streams.peak import BadPeakHours, PeakHours


def family_table() -> FamilyTable:
    """The family table in force: the default one with the operator's FAMILIES_FILE applied."""
    return load_families(override=settings().families_file)


def _families() -> tuple[str, ...]:
    table = family_table()
    wanted = [f.strip() for f in settings().worker_families.split(",") if f.strip()]
    return tuple(wanted) if wanted else table.names


def cmd_asyncapi(args: argparse.Namespace) -> None:
    from streams import contract, families

    if args.write:  # the document in the repository describes the default family table
        contract.DOCUMENT.write_text(contract.render(families.load()))
        print(f"wrote {contract.DOCUMENT}")
    else:
        print(contract.render(family_table()), end="")


def cmd_topics(args: argparse.Namespace) -> None:
    from streams import topics

    s = settings()
    created = asyncio.run(
        topics.create_all(s.kafka_bootstrap_servers, family_table(), s.topic_partitions, s.topic_replication)
    )
    print(f"topics ready ({len(created)} created)")


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    from api.access import AccessConfigError
    from api.app import create_app

    s = settings()
    try:
        app = create_app(s)
    except AccessConfigError as exc:  # a bad key entry or rate stops the api at start, named
        sys.exit(f"imagegen: {exc}")
    uvicorn.run(
        app,
        host=s.api_host,
        port=s.api_port,
        access_log=False,
        log_config=logs.config(s.log_format, s.log_level, "api"),
    )


def cmd_keys_new(args: argparse.Namespace) -> None:
    from api.access import AccessConfigError, new_key

    try:
        key, entry = new_key(args.name, args.scope)
    except AccessConfigError as exc:
        sys.exit(f"imagegen: {exc}")
    print(f"key (shown this once; give it to the client, it is stored nowhere):\n  {key}")
    print(f"entry for API_KEYS (comma separated) or a line of API_KEYS_FILE (the key's SHA-256):\n  {entry}")


def cmd_worker(args: argparse.Namespace) -> None:
    from inference.speed import UnknownLever
    from streams.app import create_app
    from streams.stopping import StoppingWorker

    s = settings()  # TORCH_THREADS is applied where pipelines load (inference.models.Pipelines)
    try:
        app = create_app(s, family_table(), _families())
    except UnknownLever as exc:  # SPEED_LEVERS this machine cannot pull: said once, at start
        sys.exit(f"imagegen: {exc}")
    logging_config = logs.config(s.log_format, s.log_level, "worker")
    StoppingWorker(app, loglevel=s.log_level, quiet=True, logging_config=logging_config).execute_from_commandline()


def cmd_projector(args: argparse.Namespace) -> None:
    from projections import workers
    from projections.projector import Projector

    s = settings()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        projector = Projector(s.kafka_bootstrap_servers, s.database_url)
        started = asyncio.create_task(projector.run(stop))
        ready = asyncio.create_task(projector.ready.wait())  # migrations applied: the workers table exists
        await asyncio.wait({started, ready}, return_when=asyncio.FIRST_COMPLETED)
        if started.done():
            started.result()  # the projector failed to start: say why
        await asyncio.gather(started, workers.track(s.kafka_bootstrap_servers, s.database_url, stop))

    asyncio.run(main())


def cmd_rebuild(args: argparse.Namespace) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from projections.rebuild import rebuild

    s = settings()
    with Progress(
        TextColumn("rebuilding the read model"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("replay", total=None, rate="")

        def progress(reached: int, held: int, seconds: float) -> None:
            bar.update(task, completed=reached, total=max(held, reached), rate=f"{reached / max(seconds, 1e-3):,.0f}/s")

        done = asyncio.run(
            rebuild(
                s.kafka_bootstrap_servers,
                s.database_url,
                progress=progress,
                keep_old=args.keep_old,
                processes=args.processes,
            )
        )
    kept = f"; the replaced tables are in schema {done.old_schema}" if done.old_schema else ""
    print(f"rebuilt from {done.events} events in {done.seconds:.1f} s and switched over{kept}")


def cmd_webhooks(args: argparse.Namespace) -> None:
    from webhooks.dispatcher import Dispatcher

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await Dispatcher(settings()).run(stop)

    asyncio.run(main())


SERVICES = ("api", "worker", "projector", "webhooks", "dev")


def main(argv: list[str] | None = None) -> None:
    # The dev stack's endpoints, where no variable names others (imagegen/endpoints.py).
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    if words[:1] != ["dev"] and endpoints.apply():
        settings.cache_clear()
    parser = argparse.ArgumentParser(prog="imagegen", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the libraries do (INFO)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="serve the HTTP API").set_defaults(func=cmd_api)
    sub.add_parser("worker", help="run the variations agent and family agents").set_defaults(func=cmd_worker)
    sub.add_parser("projector", help="project the event log into Postgres").set_defaults(func=cmd_projector)
    sub.add_parser("webhooks", help="post the domain events to webhook subscribers").set_defaults(func=cmd_webhooks)
    sub.add_parser("topics", help="create the Kafka topics").set_defaults(func=cmd_topics)
    projections = sub.add_parser("projections", help="manage the read model")
    projections_sub = projections.add_subparsers(dest="action", required=True)
    rebuild = projections_sub.add_parser(
        "rebuild", help="replay the event log into fresh tables while the live ones serve, then switch over"
    )
    rebuild.add_argument("--keep-old", action="store_true", help="keep the replaced tables in a schema of their own")
    rebuild.add_argument(
        "--processes", type=int, default=None, help="projector processes replaying at once (default: one per core)"
    )
    rebuild.set_defaults(func=cmd_rebuild)
    asyncapi = sub.add_parser("asyncapi", help="print the AsyncAPI 3 document of every topic")
    asyncapi.add_argument("--write", action="store_true", help="refresh docs/asyncapi.json (default family table)")
    asyncapi.set_defaults(func=cmd_asyncapi)
    keys = sub.add_parser("keys", help="make API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    new = keys_sub.add_parser("new", help="print a new random key once, and the entry (its hash) to configure it")
    new.add_argument("name", help="who holds it, logged with its requests (letters, digits, ._-)")
    scopes = "read: GET; submit: also create, regenerate, retry, cancel; admin: also webhooks"
    new.add_argument("--scope", choices=("read", "submit", "admin"), default="read", help=scopes)
    new.set_defaults(func=cmd_keys_new)
    queue.add_commands(sub)
    generate.add_commands(sub)
    winner.add_commands(sub)
    dev.add_commands(sub)
    args = parser.parse_args(argv)
    s = settings()
    # A service logs what it does; a command run by hand says only its answer and its warnings.
    quiet = args.command not in SERVICES and not args.verbose and "LOG_LEVEL" not in os.environ
    logs.setup(s.log_format, "WARNING" if quiet else s.log_level, args.command)
    if quiet:  # an unreachable broker is said once, below, not by aiokafka on every try
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if args.command != "generate":
        try:  # a bad operator table stops a service at start, with the entry named, not at the first job
            family_table()
        except FamilyTableError as exc:
            sys.exit(f"imagegen: the family table is invalid: {exc}")
        try:  # and bad peak hours, named
            PeakHours.parse(s.peak_hours, s.peak_timezone)
        except BadPeakHours as exc:
            sys.exit(f"imagegen: {exc}")
    try:
        args.func(args)
    except KafkaConnectionError:
        unreachable(f"no Kafka broker answers at {s.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)")
    except psycopg.OperationalError as exc:
        where = psycopg.conninfo.conninfo_to_dict(s.database_url)
        address = f"{where.get('host', 'localhost')}:{where.get('port', 5432)}"
        reason = str(exc).strip().splitlines()[0].rsplit(": ", 1)[-1] if str(exc).strip() else type(exc).__name__
        unreachable(f"the database at {address} does not answer (DATABASE_URL): {reason}")
    except httpx.ConnectError:
        unreachable(f"the api at {getattr(args, 'api', s.public_base_url)} does not answer (--api)")


def unreachable(message: str) -> NoReturn:
    print(f"imagegen: {message}", file=sys.stderr)
    raise SystemExit(2)


if __name__ == "__main__":
    sys.exit(main())
