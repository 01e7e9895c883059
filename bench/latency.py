"""Latency benchmark: how long imagegen itself takes around a drawing, on the whole stack (Apache Kafka,
Postgres, the api, a worker, the projector) on this machine.

One variation at a time (one family, one denoising step of the tiny model), posted over HTTP. For each:
POST -> `VariationCompleted` read from the event log, and POST -> the variation shown completed by
`GET /variations/{id}` (the read model); each also minus the drawing time its `FamilyCompleted`
records, which is the orchestration overhead: the hops through Kafka, the aggregate, the projector.

    .venv/bin/python bench/latency.py              # 30 variations
    .venv/bin/python bench/latency.py --count 50 --family hero
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imagegen.devstack import DevStack, free_port
from imagegen.services import Services
from streams import clients, codec, topics
from streams import messages as m


class Log:
    """Follows the event log from its end; records when each variation's outcome events arrive."""

    def __init__(self, servers: str) -> None:
        self.servers = servers
        self.concluded: dict[uuid.UUID, float] = {}
        self.drawn: dict[uuid.UUID, float] = {}  # seconds the worker spent drawing
        self.arrived = asyncio.Event()

    async def follow(self, ready: asyncio.Event) -> None:
        consumer = clients.reader(self.servers, fetch_max_wait_ms=500)
        await consumer.start()
        try:
            parts = await clients.partitions(consumer, topics.EVENTS)
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            for tp in parts:
                await consumer.position(tp)
            ready.set()
            while True:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    now = time.perf_counter()
                    for record in records:
                        event = codec.decode_event(record.value)
                        if isinstance(event, m.FamilyCompleted):
                            self.drawn[event.variation_id] = event.duration_s
                        elif isinstance(event, m.VariationCompleted):
                            self.concluded.setdefault(event.variation_id, now)
                            self.arrived.set()
        finally:
            await consumer.stop()

    async def until_concluded(self, vid: uuid.UUID, timeout: float = 60.0) -> float:
        deadline = time.perf_counter() + timeout
        while vid not in self.concluded:
            self.arrived.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"variation {vid} did not complete in {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)
        return self.concluded[vid]


async def measure(api_url: str, servers: str, count: int, family: str) -> list[dict[str, float]]:
    log, ready = Log(servers), asyncio.Event()
    following = asyncio.create_task(log.follow(ready))
    await asyncio.wait_for(ready.wait(), 60)
    rows = []
    run = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        for i in range(count + 1):  # the first is a warm-up: the model's first call, first connections
            name = f"latency-{run}-{i}"
            generation = {"prompt": "a lighthouse at dawn", "seed": i, "model": "tiny", "inferenceSteps": 1}
            body = {"name": name, "families": [family], "generation": generation}
            posted = time.perf_counter()
            r = await client.post("/api/images/variations", json=body)
            assert r.status_code == 202, r.text
            vid = uuid.UUID(r.json()["id"])
            while True:  # the read model, polled as a client would, every 5 ms
                view = await client.get(f"/api/images/variations/{vid}")
                if view.status_code == 200 and view.json()["status"] == "completed":
                    visible = time.perf_counter()
                    break
                await asyncio.sleep(0.005)
            concluded = await log.until_concluded(vid)
            if i:
                draw = log.drawn[vid]
                rows.append({"event": concluded - posted, "read model": visible - posted, "drawing": draw})
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
    return rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(rows: list[dict[str, float]]) -> None:
    def ms(values: list[float]) -> str:
        return f"{1000 * statistics.median(values):8.0f} {1000 * percentile(values, 0.95):8.0f}"

    print(f"\n{len(rows)} variations, one family, one step each (ms)      p50      p95")
    draw = [r["drawing"] for r in rows]
    for key, seen in (("event", "VariationCompleted"), ("read model", "completed in GET /variations/{id}")):
        total = [r[key] for r in rows]
        print(f"  POST -> {seen:38} {ms(total)}")
        print(f"      minus drawing (the overhead)             {ms([t - d for t, d in zip(total, draw, strict=True)])}")
    print(f"  drawing, as FamilyCompleted records it         {ms(draw)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--family", default="square")
    args = parser.parse_args()
    with DevStack(partitions=4) as stack, tempfile.TemporaryDirectory(prefix="imagegen-latency-") as folder:
        port = free_port()
        env = {
            **stack.env(),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "TORCH_THREADS": "1",
            "MODEL_CACHE_DIR": str(Path(".cache/imagegen/models").absolute()),
        }
        services = Services(env, Path(folder) / "logs", api_port=port)
        try:
            started = time.perf_counter()
            services.start()
            took = time.perf_counter() - started
            print(f"stack up: kafka ready in {stack.broker.ready_s:.2f} s, services in {took:.1f} s")
            report(asyncio.run(measure(services.api_url, stack.bootstrap_servers, args.count, args.family)))
        finally:
            services.stop()


if __name__ == "__main__":
    main()
