"""DX priority on the real broker: a DX job posted behind a backlog of normal jobs of its family
starts as soon as the take in flight ends, before the rest of the backlog."""

from __future__ import annotations

import json
from datetime import datetime

from streams import codec, topics
from streams import messages as m
from tests.builders import generate_family, generation
from tests.integration.kafka import produce, read_until

# slow enough that the backlog outlasts a fetch of the priority topic
GEN = generation("a quiet harbour at dusk", 11, steps=40, guidance=5.0)
FAMILY = "hero"


def job(name: str, priority: m.Priority) -> m.GenerateFamily:
    return generate_family(name, FAMILY, GEN, job_id=m.derive_id(m.variation_id(name), 1, FAMILY, 1), priority=priority)


async def test_a_dx_job_overtakes_a_backlog_of_normal_jobs(services, stack):
    backlog = [job(f"backlog-{i:02d}", "normal") for i in range(12)]
    dx = job("launch-day", "dx")
    ids = {str(j.job_id) for j in [*backlog, dx]}

    def started(records) -> dict[str, datetime]:
        out = {}
        for r in records:
            e = json.loads(r.value)
            if e["type"] == "FamilyStarted" and e["job_id"] in ids:
                out.setdefault(e["job_id"], datetime.fromisoformat(e["occurred_at"]))
        return out

    # the backlog in one produce request, so the worker fetches it whole and holds it waiting
    # (one partition, as a producer keying by family would put it)
    await produce(
        stack.bootstrap_servers, topics.family(FAMILY), backlog[0].key, *map(codec.encode, backlog), together=True
    )
    # the worker is drawing the backlog when the DX job comes
    await read_until(stack.bootstrap_servers, topics.EVENTS, lambda rs: len(started(rs)) > 0)
    await produce(stack.bootstrap_servers, topics.family(FAMILY, priority=True), dx.key, codec.encode(dx))

    records = await read_until(stack.bootstrap_servers, topics.EVENTS, lambda rs: len(started(rs)) == len(ids))
    at = started(records)
    dx_at = at[str(dx.job_id)]
    before = sorted(j.name for j in backlog if at[str(j.job_id)] < dx_at)
    print(f"\nnormal jobs started before the DX job: {len(before)} of {len(backlog)}")
    # the takes in flight when the DX job arrived finish; the rest of the backlog waits for it
    assert len(before) <= 8, before
    assert len(backlog) - len(before) >= 4
