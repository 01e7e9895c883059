"""End to end through HTTP: the original product's example travels the whole way, on the real broker,
Postgres and filesystem storage, with the real (tiny) SDXL pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import jsonschema
import pytest
import pyvips

from inference.cutting import read_metadata
from streams import contract, topics
from streams.families import load
from tests.integration.kafka import read_until
from tests.waiting import until
from tests.waiting import variation as wait_for

EXAMPLE = {
    "name": "hero-sunset-beach",
    "category": "travel",
    "families": ["square", "landscape", "facebook-og"],
    "generation": {
        "prompt": "A golden sunset over a quiet beach with palm trees",
        "negativePrompt": "text, watermark",
        "seed": 1234,
        "model": "tiny",
        "inferenceSteps": 4,
        "guidanceScale": 5.0,
    },
    "isDxJob": False,
    # the landscape's subject is where the marketer says: the top edge, in the middle
    "focalPoints": {"landscape": {"x": 0.5, "y": 0.0}},
}
DONE = ("completed", "partial", "failed", "cancelled")


def masters(api: httpx.Client, variation: dict) -> dict[str, bytes]:
    return {f["name"]: api.get(f["publicUrl"]).content for f in variation["families"]}


@pytest.fixture(scope="module")
def example(api: httpx.Client) -> dict:
    began = time.perf_counter()
    r = api.post("/api/images/variations", json=EXAMPLE)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["id"] == str(uuid.uuid5(uuid.UUID("6f1e8a4c-3c1b-5d0e-9a57-2b1f0d9c7e42"), "hero-sunset-beach"))
    assert accepted["status"] == "pending"
    variation = wait_for(api, accepted["id"])
    print(f"\nPOST to {variation['status']}: {time.perf_counter() - began:.2f} s for {EXAMPLE['name']}")
    return variation


def test_the_example_completes_with_every_derivative_at_its_exact_size(api, example):
    assert example["status"] == "completed"
    assert [f["name"] for f in example["families"]] == EXAMPLE["families"]
    table = load()
    for family in example["families"]:
        spec = table.get(family["name"])
        assert family["status"] == "completed" and family["round"] == 1
        served = api.get(family["publicUrl"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/webp"
        image = pyvips.Image.new_from_buffer(served.content, "")
        assert (image.width, image.height) == (spec.width, spec.height)
        assert [d["name"] for d in family["derivatives"]] == sorted(d.name for d in spec.derivatives)
        for d in spec.derivatives:
            served = api.get(f"/api/images/{EXAMPLE['name']}/{d.name}")
            assert served.status_code == 200, d.name
            assert served.headers["content-type"] == "image/webp"
            assert served.content[:4] == b"RIFF" and served.content[8:12] == b"WEBP"
            image = pyvips.Image.new_from_buffer(served.content, "")
            assert (image.width, image.height) == (d.width, d.height), d.name
            xmp = read_metadata(served.content)  # every file says how it was made
            assert xmp["prompt"] == EXAMPLE["generation"]["prompt"] and xmp["seed"] == "1234", d.name
            assert xmp["variation"] == EXAMPLE["name"] and xmp["family"] == family["name"]


def test_the_variation_reads_back_by_name_and_in_the_list(api, example):
    by_name = api.get("/api/images/variations/name/hero-sunset-beach").json()
    assert by_name["id"] == example["id"]
    assert by_name["generation"] == EXAMPLE["generation"]
    listed = api.get("/api/images/variations", params={"q": "sunset"}).json()
    assert example["id"] in [v["id"] for v in listed["items"]]
    assert by_name["focalPoints"] == EXAMPLE["focalPoints"] and by_name["focalPoint"] is None


def test_each_derivative_says_how_it_was_framed(api, example):
    families = {f["name"]: f for f in example["families"]}
    landscape = families["landscape"]
    assert landscape["subject"] == {"left": 960, "top": 0, "width": 0, "height": 0, "foundBy": "focal-point"}
    for d in landscape["derivatives"]:
        assert d["cropReason"] == "focal-point" and d["subjectClearOfSafeZones"] is True, d
    card = next(d for d in landscape["derivatives"] if d["name"] == "x-large-card")
    assert card["cropBox"] == {"left": 0, "top": 0, "width": 1920, "height": 960}  # the top of the master
    assert card["scale"] == 0.625 and card["upscaled"] is False
    for d in families["square"]["derivatives"] + families["facebook-og"]["derivatives"]:
        # the tiny model draws noise, not faces: the busiest region is kept
        assert d["cropReason"] in ("entropy", "face") and d["cropBox"]["width"] > 0
    og_square = next(d for d in families["square"]["derivatives"] if d["name"] == "og-square")
    assert og_square["upscaled"] is True and og_square["scale"] == pytest.approx(1200 / 1024, abs=1e-3)


def test_a_second_create_with_the_same_name_is_rejected_without_touching_the_first(api, example):
    other = {**EXAMPLE, "generation": {**EXAMPLE["generation"], "seed": 99, "prompt": "a snowy mountain"}}
    r = api.post("/api/images/variations", json=other)
    assert r.status_code == 409
    assert r.json()["errors"] == [{"field": "name", "message": "already taken"}]
    after = api.get(f"/api/images/variations/{example['id']}").json()
    assert after["generation"] == example["generation"] and after["round"] == example["round"]


def test_the_same_request_sent_twice_is_accepted_once(api, example):
    r = api.post("/api/images/variations", json=EXAMPLE)
    assert r.status_code == 202 and r.json()["id"] == example["id"]
    assert api.get(f"/api/images/variations/{example['id']}").json()["round"] == 1


def test_regenerate_draws_byte_identical_masters(api, example):
    before = masters(api, example)
    r = api.post(f"/api/images/variations/{example['id']}/regenerate")
    assert r.status_code == 202, r.text
    repeated = api.post(f"/api/images/variations/{example['id']}/regenerate")  # a double click, a retried post
    assert repeated.json()["commandId"] == r.json()["commandId"]  # the same command: the aggregate drops it
    again = wait_for(api, example["id"], lambda v: v["round"] == 2 and v["status"] in DONE)
    assert again["status"] == "completed"
    assert all(f["round"] == 2 for f in again["families"])
    assert masters(api, again) == before
    for first, second in zip(example["families"], again["families"], strict=True):
        drawn = first["drawnWith"]  # the record that makes the same pixels possible
        assert drawn["model"] == "tiny" and drawn["seed"] == 1234 and drawn["scheduler"] == "EulerDiscreteScheduler"
        assert drawn["weights"].startswith("sha256:") and second["drawnWith"] == drawn
        assert second["warnings"] == []
        assert drawn["refine"] == 0.0  # the tiny model's default: no hi-res pass


def test_a_hi_res_pass_is_asked_for_recorded_and_regenerated_alike(api, example):
    body = {**EXAMPLE, "name": "hero-sunset-hires", "generation": {**EXAMPLE["generation"], "refine": 0.3}}
    r = api.post("/api/images/variations", json=body)
    assert r.status_code == 202, r.text
    done = wait_for(api, r.json()["id"])
    assert done["status"] == "completed"
    refined, plain = masters(api, done), masters(api, example)
    for family in done["families"]:
        assert family["drawnWith"]["refine"] == 0.3, family["name"]
        served = api.get(family["publicUrl"])
        assert read_metadata(served.content)["refine"] == "0.3"  # and the file says so
        assert refined[family["name"]] != plain[family["name"]]  # the same seed, refined
    r = api.post(f"/api/images/variations/{done['id']}/regenerate")
    again = wait_for(api, done["id"], lambda v: v["round"] == 2 and v["status"] in DONE)
    assert all(f["drawnWith"]["refine"] == 0.3 for f in again["families"]) and masters(api, again) == refined
    too_strong = {**body, "name": "too-strong", "generation": {**body["generation"], "refine": 0.95}}
    refused = api.post("/api/images/variations", json=too_strong)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "generation.refine"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"generation": {**EXAMPLE["generation"], "seed": -1}}, "generation.seed"),
        ({"generation": {**EXAMPLE["generation"], "seed": 2**64}}, "generation.seed"),
        ({"generation": {**EXAMPLE["generation"], "prompt": "  "}}, "generation.prompt"),
        ({"generation": {**EXAMPLE["generation"], "prompt": ""}}, "generation.prompt"),
        ({"generation": {**EXAMPLE["generation"], "prompt": "x" * 2001}}, "generation.prompt"),
        ({"generation": {**EXAMPLE["generation"], "negativePrompt": "x" * 2001}}, "generation.negativePrompt"),
        ({"generation": {"seed": 1}}, "generation.prompt"),
        ({"generation": {**EXAMPLE["generation"], "inferenceSteps": 0}}, "generation.inferenceSteps"),
        ({"generation": {**EXAMPLE["generation"], "inferenceSteps": 151}}, "generation.inferenceSteps"),
        ({"generation": {**EXAMPLE["generation"], "guidanceScale": -0.5}}, "generation.guidanceScale"),
        ({"generation": {**EXAMPLE["generation"], "guidanceScale": 30.5}}, "generation.guidanceScale"),
        ({"generation": {**EXAMPLE["generation"], "sampler": "ddim"}}, "generation.sampler"),
        ({"generation": {**EXAMPLE["generation"], "model": "nope"}}, "generation.model"),
        ({"families": ["square", "octagon"]}, "families"),
        ({"families": []}, "families"),
        ({"name": "Not URL safe!"}, "name"),
        ({"name": "variations"}, "name"),
        ({"name": "../etc"}, "name"),
        ({"name": "a" * 121}, "name"),
        ({"name": None}, "name"),
        ({"category": "c" * 101}, "category"),
        ({"isDxJob": "maybe"}, "isDxJob"),
        ({"focalPoint": {"x": 1.5, "y": 0.5}}, "focalPoint.x"),
        ({"focalPoints": {"hero": {"x": 0.5, "y": 0.5}}}, "focalPoints"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_field(api, change, field):
    r = api.post("/api/images/variations", json={**EXAMPLE, "name": "bad-input", **change})
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert field in r.json()["message"]


def test_a_body_that_is_not_json_is_refused(api):
    r = api.post("/api/images/variations", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "body"
    r = api.post("/api/images/variations", content=b"name=x", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["errors"][0]["field"] == "content-type"
    r = api.post("/api/images/variations", content=json.dumps(EXAMPLE).encode())  # no content type at all
    assert r.status_code == 415
    r = api.post("/api/images/variations", json=[EXAMPLE])  # JSON, but not an object
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("query", "field"), [("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"), ("offset=-1", "offset")]
)
def test_paging_out_of_range_gets_a_422_naming_the_parameter(api, query, field):
    r = api.get(f"/api/images/variations?{query}")
    assert r.status_code == 422 and r.json()["errors"] == [{"field": field, "message": "out of range"}]


def test_unknown_things_are_404(api):
    assert api.get("/api/images/variations/not-a-uuid").status_code == 404
    assert api.get(f"/api/images/variations/{uuid.uuid4()}").status_code == 404
    assert api.post(f"/api/images/variations/{uuid.uuid4()}/regenerate").status_code == 404
    assert api.get("/api/images/variations/name/nobody").status_code == 404
    assert api.get("/api/images/hero-sunset-beach/no-such-size").status_code == 404
    assert api.get("/api/images/..%2F..%2Fetc/passwd").status_code == 404


def test_models_and_ml_health_come_from_the_workers_heartbeats(api, example):
    def ml_health() -> dict:
        return api.get("/api/images/health/ml").json()

    health = until(ml_health, "ML health ok", 30, every=0.2, done=lambda h: h["status"] == "ok")
    for name in ("square", "landscape", "portrait", "hero", "facebook-og"):
        family = health["families"][name]
        assert family["served"] and family["liveWorkers"] == 1 and family["secondsSinceSeen"] < 15
    assert health["families"]["square"]["completed"] >= 1
    (worker,) = [w for w in health["workers"] if w["live"]]
    assert worker["device"] == "cpu" and worker["freeMemoryBytes"] > 0
    models = {m["name"]: m for m in api.get("/api/images/models").json()["models"]}
    assert {"tiny", "photorealistic", "anime", "turbo"} <= set(models)
    assert models["tiny"]["loaded"] and models["tiny"]["loadedBy"] == [worker["worker"]]
    assert not models["photorealistic"]["loaded"]


def test_a_model_without_weights_fails_clearly_and_nothing_stays_generating(api):
    body = {**EXAMPLE, "name": "no-weights", "families": ["square", "hero"], "focalPoints": {}}
    body["generation"] = {**EXAMPLE["generation"], "model": "photorealistic"}
    r = api.post("/api/images/variations", json=body)
    assert r.status_code == 202, r.text
    variation = wait_for(api, r.json()["id"])
    assert variation["status"] == "failed"
    assert "photorealistic" in variation["error"]
    for family in variation["families"]:
        assert family["status"] == "failed" and family["errorKind"] == "ModelUnavailable"
        assert family["derivatives"] == []


def test_two_creates_racing_for_one_name_one_wins_and_the_other_learns_why(api):
    # both are sent before the read model knows the name: the aggregate decides
    first = {**EXAMPLE, "name": "racing-name", "families": ["facebook-og"], "focalPoints": {}}
    second = {**first, "generation": {**first["generation"], "seed": 77}}
    answers = [api.post("/api/images/variations", json=body) for body in (first, second)]
    assert [a.status_code for a in answers] in ([202, 202], [202, 409])
    wait_for(api, answers[0].json()["id"])
    outcomes = []
    for answer in answers:
        if answer.status_code == 409:
            outcomes.append("rejected")
            continue
        link = answer.json()["links"]["command"]
        status = until(
            lambda link=link: api.get(link).json(),
            f"{link} decided",
            30,
            every=0.1,
            done=lambda s: s["status"] != "pending",
        )
        outcomes.append(status["status"])
        if status["status"] == "rejected":
            assert "already taken" in status["reason"]
    assert outcomes == ["accepted", "rejected"]
    assert (
        api.get("/api/images/variations/name/racing-name").json()["generation"]["seed"] == EXAMPLE["generation"]["seed"]
    )


def test_the_terminal_client_submits_waits_and_prints_the_urls(services):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "imagegen.cli",
            "generate",
            "from-the-terminal",
            "--prompt",
            "a paper boat",
            "--families",
            "facebook-og",
            "--seed",
            "5",
            "--api",
            services.api_url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert "from-the-terminal" in done.stdout and "completed" in done.stdout
    assert f"{services.api_url}/api/images/from-the-terminal/og-image" in done.stdout


def test_the_contract_is_served_and_what_really_went_on_the_topics_fits_it(api, example, stack):
    served = api.get("/api/images/asyncapi.json")
    assert served.status_code == 200 and served.json() == contract.document(load())
    doc = served.json()
    for topic in (topics.EVENTS, topics.DOMAIN_EVENTS):
        records = asyncio.run(
            read_until(
                stack.bootstrap_servers,
                topic,
                lambda seen: any(b"VariationCompleted" in r.value or b"VARIATION_COMPLETED" in r.value for r in seen),
                keep=lambda r: r.key == example["id"].encode(),
            )
        )
        for record in records:
            wire = json.loads(record.value)
            payload = doc["components"]["messages"][wire["type"]]["payload"]
            jsonschema.Draft202012Validator({**payload, "components": doc["components"]}).validate(wire)
        print(f"\n{topic}: {len(records)} messages of {example['name']} fit the contract")


def seo_consumer(stack, *args: str) -> str:
    """What `examples/seo_consumer.py` prints, run with `args` in a consumer group of its own."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers}
    group = f"seo-test-{uuid.uuid4().hex[:8]}"
    ran = subprocess.run(
        [sys.executable, "examples/seo_consumer.py", *args, "--group", group],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    print("\n" + ran.stdout)
    return ran.stdout


def test_an_seo_service_fed_by_the_domain_events_prints_the_social_meta_tags(api, example, stack):
    printed = seo_consumer(stack, EXAMPLE["name"], "--alt", "Sunset & palms")
    base = f"{api.base_url}/api/images/{EXAMPLE['name']}"
    assert printed.splitlines() == [
        f"<!-- {EXAMPLE['name']}: completed -->",
        f'<meta property="og:image" content="{base}/og-image">',
        '<meta property="og:image:width" content="1200">',
        '<meta property="og:image:height" content="630">',
        '<meta property="og:image:type" content="image/webp">',
        '<meta property="og:image:alt" content="Sunset &amp; palms">',
        '<meta name="twitter:card" content="summary_large_image">',
        f'<meta name="twitter:image" content="{base}/x-large-card">',
        '<meta name="twitter:image:alt" content="Sunset &amp; palms">',
    ]
    for url in (f"{base}/og-image", f"{base}/x-large-card"):
        served = pyvips.Image.new_from_buffer(api.get(url).content, "")
        assert (served.width, served.height) == ((1200, 630) if url.endswith("og-image") else (1200, 600))
