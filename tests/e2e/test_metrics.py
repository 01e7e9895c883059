"""GET /metrics after a real run: the read model's and the broker's series, in Prometheus's format."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.families import load
from tests.e2e.test_http import wait_for


@pytest.fixture(scope="module")
def api(services) -> httpx.Client:
    with httpx.Client(base_url=services.api_url, timeout=30) as client:
        client.services = services
        yield client


def samples(api: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = api.get("/api/images/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_count_variations_families_drawing_time_workers_and_waiting_jobs(api: httpx.Client) -> None:
    body = {"name": "metrics-lighthouse", "families": ["square"],
            "generation": {"prompt": "a lighthouse", "seed": 2, "model": "tiny", "inferenceSteps": 2}}  # fmt: skip
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
