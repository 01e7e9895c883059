"""Fuzzing through HTTP: schemathesis draws requests from the API's own OpenAPI document, valid ones and
invalid ones, and sends them to an api process of a stack of its own (the commands it accepts land on
that stack's log, where no worker draws them). Not one answer is a 5xx, and each is documented: its
status, its media type and its body."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from imagegen.devstack import DevStack, free_port
from imagegen.services import Services
from streams import codec, operational, topics
from streams import messages as m
from tests.builders import generation
from tests.conftest import ARTIFACTS
from tests.integration.kafka import produce
from tests.waiting import until

EXAMPLES = 40  # per operation and way of drawing (valid, invalid, on the seeded variations)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# An open stream never ends: tests/e2e/test_live.py tells its story.
UNFUZZED = ("GET /api/images/variations/{id}/live",)
NOW = datetime.now(UTC)
GEN = generation("a lighthouse at dawn", 7)
SET, FIRST, SECOND = "fuzz-set", "fuzz-set-v1", "fuzz-set-v2"
CREATED = m.derive_id("fuzz", FIRST)  # the command that made FIRST


def history() -> list[m.Event]:
    """A set of two: FIRST partial (square drawn and cut, landscape failed), SECOND still drawing."""
    one, two = m.variation_id(FIRST), m.variation_id(SECOND)
    square, landscape, drawing = m.derive_id(one, "square"), m.derive_id(one, "landscape"), m.derive_id(two, "sq")
    master = m.StoredImage(
        name="square",
        key=f"{FIRST}/masters/square.webp",
        url=f"/api/images/{FIRST}/square",
        width=64,
        height=64,
        bytes=12,
    )
    profile = m.StoredImage(
        name="profile",
        key=f"{FIRST}/derivatives/profile.webp",
        width=32,
        height=32,
        bytes=12,
        url=f"/api/images/{FIRST}/profile",
        crop=(0, 0, 64, 64),
        crop_reason="face",
        crop_clear=True,
        scale=0.5,
    )
    at = dict(occurred_at=NOW)
    return [
        m.VariationRequested(
            event_id=uuid.uuid4(),
            variation_id=one,
            command_id=CREATED,
            name=FIRST,
            category="sea",
            families=("square", "landscape"),
            generation=GEN,
            priority="normal",
            variant_set=SET,
            variant=1,
            focal_point=m.FocalPoint(x=0.5, y=0.25),
            **at,
        ),
        m.VariationRequested(
            event_id=uuid.uuid4(),
            variation_id=two,
            command_id=uuid.uuid4(),
            name=SECOND,
            category="sea",
            families=("square",),
            generation=GEN.model_copy(update={"seed": 8}),
            priority="dx",
            variant_set=SET,
            variant=2,
            **at,
        ),
        m.FamilyStarted(
            event_id=uuid.uuid4(),
            variation_id=one,
            job_id=square,
            family="square",
            round=1,
            attempt=1,
            worker="w:1",
            **at,
        ),
        m.FamilyCompleted(
            event_id=uuid.uuid4(),
            variation_id=one,
            job_id=square,
            family="square",
            round=1,
            attempt=1,
            master=master,
            derivatives=(profile,),
            model="tiny",
            seed=7,
            duration_s=0.5,
            scheduler="euler",
            weights="abc",
            subject=(8, 8, 32, 32),
            subject_reason="face",
            **at,
        ),
        m.FamilyStarted(
            event_id=uuid.uuid4(),
            variation_id=one,
            job_id=landscape,
            family="landscape",
            round=1,
            attempt=1,
            worker="w:1",
            **at,
        ),
        m.FamilyFailed(
            event_id=uuid.uuid4(),
            variation_id=one,
            job_id=landscape,
            family="landscape",
            round=1,
            attempt=1,
            error_kind="oom",
            message="out of memory",
            retryable=True,
            **at,
        ),
        m.VariationPartial(
            event_id=uuid.uuid4(), variation_id=one, round=1, failed={"landscape": "out of memory"}, **at
        ),
        m.FamilyStarted(
            event_id=uuid.uuid4(),
            variation_id=two,
            job_id=drawing,
            family="square",
            round=1,
            attempt=1,
            worker="w:1",
            **at,
        ),
    ]


def seed(stack: DevStack, api: str) -> tuple[str, str]:
    """The seeded history in the read model, its images in storage, a live worker, two webhooks: their ids."""
    heartbeat = operational.WorkerHeartbeat(
        worker="w:1",
        families=("square",),
        models_loaded=("tiny",),
        device="cpu",
        free_memory_bytes=2**30,
        interval_s=60,
        sent_at=datetime.now(UTC),
    )

    async def send() -> None:
        for event in history():
            await produce(stack.bootstrap_servers, topics.EVENTS, event.key, codec.encode(event))
        await produce(stack.bootstrap_servers, topics.WORKERS, heartbeat.key, codec.encode(heartbeat))

    for key in (f"{FIRST}/masters/square.webp", f"{FIRST}/derivatives/profile.webp"):
        (stack.storage_path / key).parent.mkdir(parents=True, exist_ok=True)
        (stack.storage_path / key).write_bytes(b"RIFF\x04\x00\x00\x00WEBP")
    asyncio.run(send())

    def projected() -> dict | None:
        found = httpx.get(f"{api}/api/images/variations/name/{FIRST}").json()
        return (
            found
            if found.get("status") == "partial" and httpx.get(f"{api}/api/images/health/ml").json()["workers"]
            else None
        )

    until(projected, "the seeded history projected", 60, every=0.2)
    hooks = [httpx.post(f"{api}/api/images/webhooks", json={"url": f"http://127.0.0.1:9/{n}"}) for n in range(2)]
    assert [h.status_code for h in hooks] == [201, 201], hooks[0].text
    return hooks[0].json()["id"], hooks[1].json()["id"]


def pins(hook: str, deleted: str) -> dict[str, dict[str, str]]:
    """Path parameters that name what was seeded, so that what finds something is fuzzed too."""
    one, two, at = str(m.variation_id(FIRST)), str(m.variation_id(SECOND)), "/api/images"
    return {
        f"GET {at}/variations/name/{{name}}": {"name": FIRST},
        f"GET {at}/variations/{{id}}": {"id": one},
        f"POST {at}/variations/{{id}}/regenerate": {"id": one},
        f"POST {at}/variations/{{id}}/families/{{family}}/retry": {"id": one, "family": "landscape"},
        f"POST {at}/variations/{{id}}/cancel": {"id": two},
        f"GET {at}/sets/{{name}}": {"name": SET},
        f"POST {at}/sets/{{name}}/regenerate": {"name": SET},
        f"GET {at}/commands/{{id}}": {"id": str(CREATED)},
        f"GET {at}/webhooks/{{id}}": {"id": hook},
        f"DELETE {at}/webhooks/{{id}}": {"id": deleted},
        f"GET {at}/webhooks/{{id}}/deliveries": {"id": hook},
        f"GET {at}/{{variation}}/{{name}}": {"variation": FIRST, "name": "square"},
        f"HEAD {at}/{{variation}}/{{name}}": {"variation": FIRST, "name": "profile"},
    }


@pytest.fixture(scope="module")
def own_api() -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    """An api on a stack of its own, and a projector only to apply the migrations and fold the seeded
    history: the api's url, and the path parameters that find what was seeded."""
    set_hypothesis_home_dir(ARTIFACTS / "hypothesis")  # its caches, not a .hypothesis/ in the working folder
    with DevStack(partitions=1) as stack:
        port = free_port()
        # no rate limits: a thousand requests a minute is the point
        env = {
            **stack.env(),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "RATE_LIMIT_READ": "",
            "RATE_LIMIT_SUBMIT": "",
        }
        services = Services(env, ARTIFACTS / "logs" / "fuzz", api_port=port)
        subprocess.run([sys.executable, "-m", "imagegen.cli", "topics"], env=services.env, check=True)
        try:
            services.spawn("projector", "projector")
            services.wait_for_log("projector", "projecting", 60)
            services.spawn("api", "api")
            services.wait_for_api(60)
            yield services.api_url, pins(*seed(stack, services.api_url))
            services.check()  # the api lived through it
        finally:
            services.stop()
            set_hypothesis_home_dir(None)


def fuzz(operation: Any, api: str, mode: GenerationMode, path: dict[str, str] | None) -> tuple[Counter[int], list[str]]:
    """Up to `EXAMPLES` cases of one operation: the statuses they got, and what each failing one broke."""
    statuses: Counter[int] = Counter()
    broken: list[str] = []
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=api, session=session, timeout=30)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:  # kept, not raised: every operation is fuzzed, and the figures printed
            broken.extend(
                f"{response.status_code} {f.title}: {f.message}\n  {case.as_curl_command()}" for f in group.exceptions
            )

    with contextlib.suppress(Unsatisfiable):  # nothing to draw: an invalid request of one that takes nothing
        run()
    return statuses, broken


def test_a_thousand_fuzzed_requests_find_no_server_error_and_no_undocumented_answer(own_api):
    api_url, pinned = own_api
    began = time.perf_counter()
    schema = schemathesis.openapi.from_dict(httpx.get(f"{api_url}/api/images/openapi.json").json())
    schema.validate()
    statuses: dict[str, Counter[int]] = {}
    broken: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in UNFUZZED:
            continue
        ways = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        if operation.label in pinned:
            ways.append((GenerationMode.POSITIVE, pinned[operation.label]))
        got = statuses[operation.label] = Counter()
        for mode, path in ways:
            answered, failed = fuzz(operation, api_url, mode, path)
            got += answered
            broken += failed
    seconds = time.perf_counter() - began
    cases = sum(c.total() for c in statuses.values())
    errors = sum(n for c in statuses.values() for status, n in c.items() if status >= 500)
    print(f"\n{'cases':>6}  operation: statuses")
    for label, got in statuses.items():
        print(f"{got.total():>6}  {label}: " + " ".join(f"{s}x{n}" for s, n in sorted(got.items())))
    print(f"{cases:>6}  in all, {seconds:.0f} s; {errors} answered 5xx; {len(broken)} checks failed")
    print("\n".join(dict.fromkeys(broken)))
    assert cases >= 1000
    assert errors == 0 and not broken
