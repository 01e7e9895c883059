"""GET /metrics: Prometheus series read at scrape time from the read model (variations and families
by status, drawing time per family, workers) and from the broker (waiting jobs per family and
priority: the workers' group's lag). Formatted by prometheus-client."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from api import endpoint as e
from projections import views
from streams import control

log = logging.getLogger(__name__)


class _Snapshot(Collector):
    def __init__(self, metrics: list[Any]) -> None:
        self.metrics = metrics

    def collect(self) -> Any:
        return iter(self.metrics)


async def metrics(request: Request) -> Response:
    async with request.app.state.pool.connection() as conn:
        counts = await views.status_counts(conn)
        heard = await views.workers(conn)
    variations = GaugeMetricFamily("imagegen_variations", "Variations by status", labels=["status"])
    for status, n in counts["variations"].items():
        variations.add_metric([status], n)
    families = GaugeMetricFamily(
        "imagegen_families", "Family jobs of the current rounds by state", labels=["family", "state"]
    )
    drawing = SummaryMetricFamily(
        "imagegen_family_draw_seconds", "Seconds to draw and cut a family's images", labels=["family"]
    )
    for (family, state), n in counts["families"].items():
        families.add_metric([family, state], n)
    for family, (n, total) in counts["durations"].items():
        drawing.add_metric([family], count_value=n, sum_value=total)
    live = GaugeMetricFamily("imagegen_workers_live", "Workers heard from within three heartbeat intervals")
    live.add_metric([], sum(w["live"] for w in heard))
    memory = GaugeMetricFamily(
        "imagegen_worker_free_memory_bytes", "Free device memory a live worker reports", labels=["worker", "device"]
    )
    for w in heard:
        if w["live"] and w["freeMemoryBytes"] is not None:
            memory.add_metric([w["worker"], w["device"]], w["freeMemoryBytes"])
    gpu_total = GaugeMetricFamily(
        "imagegen_worker_gpu_memory_total_bytes", "A live worker's GPU memory", labels=["worker", "device"]
    )
    gpu_allocated = GaugeMetricFamily(
        "imagegen_worker_gpu_memory_allocated_bytes",
        "GPU memory torch holds in a live worker (weights, activations)",
        labels=["worker", "device"],
    )
    for w in heard:
        if w["live"] and w["deviceMemoryTotalBytes"] is not None:
            gpu_total.add_metric([w["worker"], w["device"]], w["deviceMemoryTotalBytes"])
            gpu_allocated.add_metric([w["worker"], w["device"]], w["deviceMemoryAllocatedBytes"] or 0)
    collected = [variations, families, drawing, live, memory, gpu_total, gpu_allocated]
    try:
        state = request.app.state
        waiting = await control.waiting_jobs(state.settings.kafka_bootstrap_servers, state.families.names)
    except Exception as exc:  # the broker is down: the read model's series still answer
        log.warning("queue lag not read: %s", exc)
    else:
        lag = GaugeMetricFamily("imagegen_queue_lag", "Jobs waiting for a worker", labels=["family", "priority"])
        for (family, priority), n in sorted(waiting.items()):
            lag.add_metric([family, priority], n)
        collected.append(lag)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(collected))
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")


ENDPOINTS = (
    e.Endpoint(
        ("GET",),
        "/metrics",
        metrics,
        e.READ,
        "operations",
        "Prometheus series",
        {200: e.Answer("the text exposition format", None, e.PLAIN), **e.UNAVAILABLE},
    ),
)
