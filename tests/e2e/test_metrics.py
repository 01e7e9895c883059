"""GET /metrics after a real run: the read model's and the broker's series, in Prometheus's format."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from streams.families import load
from tests.builders import create_body, generation_body
from tests.e2e.test_http import wait_for
from tests.waiting import until_async


def samples(api: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = api.get("/api/images/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_count_variations_families_drawing_time_workers_and_waiting_jobs(api: httpx.Client) -> None:
    body = create_body("metrics-lighthouse", generation_body("a lighthouse", 2))
    r = api.post("/api/images/variations", json=body)
    assert r.status_code == 202, r.text
    wait_for(api, r.json()["id"])
    got = samples(api)
    assert got[("imagegen_variations", (("status", "completed"),))] >= 1
    assert got[("imagegen_families", (("family", "square"), ("state", "completed")))] >= 1
    assert got[("imagegen_family_draw_seconds_count", (("family", "square"),))] >= 1
    assert got[("imagegen_family_draw_seconds_sum", (("family", "square"),))] > 0
    assert got[("imagegen_workers_live", ())] >= 1
    lag = {labels: n for (name, labels), n in got.items() if name == "imagegen_queue_lag"}
    assert set(lag) == {(("family", f), ("priority", p)) for f in load().names for p in ("dx", "normal")}
    assert all(n >= 0 for n in lag.values())


async def test_a_gpu_worker_s_memory_is_exposed(api: httpx.Client, stack) -> None:
    """A heartbeat as a GPU worker sends it (`FamilyJobs.heartbeat` on cuda), through the broker and
    the projector's worker tracking, to /metrics. CPU workers have no such series."""
    import asyncio

    from streams import codec, operational, topics
    from streams import messages as m
    from tests.integration.kafka import produce

    beat = operational.WorkerHeartbeat(
        worker="gpu-box:1",
        families=("hero",),
        models_loaded=("tiny",),
        device="cuda:0",
        free_memory_bytes=100 << 30,
        device_memory_total_bytes=141 << 30,
        device_memory_allocated_bytes=7 << 30,
        interval_s=60,
        sent_at=m.utcnow(),
    )
    await produce(stack.bootstrap_servers, topics.WORKERS, beat.key, codec.encode(beat))
    labels = (("device", "cuda:0"), ("worker", "gpu-box:1"))

    async def exposed() -> dict | None:
        got = await asyncio.to_thread(samples, api)
        return got if ("imagegen_worker_gpu_memory_total_bytes", labels) in got else None

    got = await until_async(exposed, "the GPU worker's memory in /metrics", 10)
    assert got[("imagegen_worker_gpu_memory_total_bytes", labels)] == 141 << 30
    assert got[("imagegen_worker_gpu_memory_allocated_bytes", labels)] == 7 << 30
    gpus = {labels for (name, labels) in got if name == "imagegen_worker_gpu_memory_total_bytes"}
    assert gpus == {labels}  # the CPU workers report none
