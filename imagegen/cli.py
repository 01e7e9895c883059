"""The `imagegen` console script: run each process, or the whole stack on one machine."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

import httpx
import psycopg
import psycopg.conninfo
from aiokafka.errors import KafkaConnectionError

from imagegen import endpoints, logs, queue
from imagegen.config import family_table, settings
from streams.families import FamilyTableError

SAMPLE = {
    "name": "hero-sunset-beach",
    "category": "travel",
    "families": ["square", "landscape", "facebook-og"],
    "generation": {
        "prompt": "A golden sunset over a quiet beach, palm trees, warm light, wide angle",
        "negativePrompt": "text, watermark, blurry",
        "seed": 42,
        "inferenceSteps": 4,
        "guidanceScale": 5.0,
    },
    "isDxJob": False,
}


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
    from streams.app import StoppingWorker, create_app

    s = settings()  # TORCH_THREADS is applied where pipelines load (inference.models.Pipelines)
    app = create_app(s, family_table(), _families())
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


def submit(api_url: str, body: dict[str, object], timeout: float = 300.0) -> dict[str, object]:
    """POST a variation and wait until it is complete, partial or failed."""
    response = httpx.post(f"{api_url}/api/images/variations", json=body, timeout=30)
    if response.status_code != 202:
        raise SystemExit(f"refused ({response.status_code}): {response.text}")
    vid = response.json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = httpx.get(f"{api_url}/api/images/variations/{vid}", timeout=10)
        if found.status_code == 200 and found.json()["status"] in ("completed", "partial", "failed", "cancelled"):
            return found.json()  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise SystemExit(f"variation {vid} did not finish in {timeout} s")


def print_variation(variation: dict[str, object]) -> None:
    print(f"\n{variation['name']} ({variation['id']}): {variation['status']}")
    for family in variation["families"]:  # type: ignore[attr-defined]
        print(f"  {family['name']:<12} {family['status']:<10} {family['publicUrl']}")
        for d in family["derivatives"]:
            print(f"    {d['name']:<20} {d['width']}x{d['height']:<6} {d['url']}")


def cmd_generate(args: argparse.Namespace) -> None:
    from imagegen.follow import follow

    body = dict(SAMPLE)
    body.update(name=args.name, families=args.families.split(","), category=args.category, isDxJob=args.dx)
    generation = {"prompt": args.prompt, "negativePrompt": args.negative_prompt, "model": args.model}
    for field, value in (("seed", args.seed), ("inferenceSteps", args.steps), ("guidanceScale", args.guidance)):
        if value is not None:
            generation[field] = value
    body["generation"] = generation
    print_variation(follow(args.api, body) if args.follow else submit(args.api, body))


def cmd_dev(args: argparse.Namespace) -> None:
    import threading

    from imagegen import endpoints
    from imagegen.devstack import DevStack
    from imagegen.services import ServiceError, Services
    from projections.rebuild import forget, past_the_log

    root = Path(args.data).resolve()
    if running := endpoints.read(root):
        sys.exit(f"imagegen: a dev stack is already running from {root} (its api: {running['PUBLIC_BASE_URL']})")
    # SIGTERM, like Ctrl-C, unwinds through `finally`: the services and the stack are stopped by pid.
    # SIGINT too when started in the background, where the shell had it ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # The broker's log, the database and the images live under root and outlive this run.
    # Kafka's usual ports when they are free, so clients configured for a local broker find it.
    stack = DevStack(root, partitions=settings().topic_partitions, fresh=args.fresh, kafka_ports=(9092, 9093)).start()
    env = {**stack.env(), "PUBLIC_BASE_URL": f"http://127.0.0.1:{args.port}", "API_PORT": str(args.port)}
    services = Services(env, root / "logs", api_port=args.port)
    stopping = threading.Event()
    try:
        services.make_topics()
        ahead = asyncio.run(past_the_log(stack.bootstrap_servers, stack.database_url))
        if ahead:  # its log was lost: serving that read model would show what the log no longer holds
            print(f"the read model is past the log ({ahead}: position, end): rebuilding it from the log")
            asyncio.run(forget(stack.database_url))  # the projector replays the log from its start
        services.start(make_topics=False)
        endpoints.write(root, env)
        print(f"imagegen is up: {services.api_url}/api/images/variations")
        print(f"  gallery {services.api_url}/gallery/")
        print(f"  broker {stack.bootstrap_servers} (Apache Kafka), database {stack.database_url}")
        print(f"  images under {stack.storage_path}, logs under {root / 'logs'}")
        print(f"  endpoints in {root / endpoints.FILE} (other imagegen commands read them)")
        if args.sample:
            began = time.monotonic()
            variation = submit(services.api_url, SAMPLE)
            print_variation(variation)
            print(f"\nsample variation {variation['status']} in {time.monotonic() - began:.1f} s")
            print(f"  details: {services.api_url}/api/images/variations/name/{SAMPLE['name']}")
        if args.exit:
            return
        print("\nserving until interrupted (Ctrl-C)")
        services.supervise(stopping)
    except ServiceError as exc:
        print(f"imagegen: {exc}; stopping the stack", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        stopping.set()
        endpoints.remove(root)
        services.stop()
        stack.stop()


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
    dev = sub.add_parser("dev", help="run the whole stack on this machine (Apache Kafka, private Postgres)")
    dev.add_argument(
        "--data", default=str(endpoints.data_folder()), help="folder of the log, database, images and logs"
    )
    dev.add_argument("--fresh", action="store_true", help="forget what earlier runs kept there: start clean")
    dev.add_argument("--port", type=int, default=settings().api_port)
    dev.add_argument("--sample", action="store_true", help="submit a sample variation and print its URLs")
    dev.add_argument("--exit", action="store_true", help="stop once the sample is done")
    dev.set_defaults(func=cmd_dev)
    gen = sub.add_parser("generate", help="submit a variation and wait for its images")
    gen.add_argument("name")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default="")
    gen.add_argument("--families", default="square,landscape,portrait,hero,facebook-og")
    gen.add_argument("--category", default="")
    gen.add_argument("--model", default=settings().default_model)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    gen.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    gen.add_argument("--dx", action="store_true", help="a DX job: drawn before any normal job, even in peak hours")
    gen.add_argument("--follow", action="store_true", help="show each family's steps as it is drawn")
    gen.add_argument("--api", default=f"http://127.0.0.1:{settings().api_port}")
    gen.set_defaults(func=cmd_generate)
    keys = sub.add_parser("keys", help="make API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    new = keys_sub.add_parser("new", help="print a new random key once, and the entry (its hash) to configure it")
    new.add_argument("name", help="who holds it, logged with its requests (letters, digits, ._-)")
    scopes = "read: GET; submit: also create, regenerate, retry, cancel; admin: also webhooks"
    new.add_argument("--scope", choices=("read", "submit", "admin"), default="read", help=scopes)
    new.set_defaults(func=cmd_keys_new)
    queue.add_commands(sub)
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
