"""`imagegen dev`: the whole stack on this machine (Apache Kafka from its jars, a private Postgres,
filesystem storage), its data kept in one folder between runs."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

from imagegen import endpoints
from imagegen.config import settings
from imagegen.generate import SAMPLE, print_variation, submit


def cmd_dev(args: argparse.Namespace) -> None:
    import threading

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


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dev = sub.add_parser("dev", help="run the whole stack on this machine (Apache Kafka, private Postgres)")
    dev.add_argument(
        "--data", default=str(endpoints.data_folder()), help="folder of the log, database, images and logs"
    )
    dev.add_argument("--fresh", action="store_true", help="forget what earlier runs kept there: start clean")
    dev.add_argument("--port", type=int, default=settings().api_port)
    dev.add_argument("--sample", action="store_true", help="submit a sample variation and print its URLs")
    dev.add_argument("--exit", action="store_true", help="stop once the sample is done")
    dev.set_defaults(func=cmd_dev)
