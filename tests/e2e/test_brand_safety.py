"""Brand safety on the running stack, whose brand policy blocks `rival cola` and `gore` and adds
`competitor logo` to every negative prompt (tests/conftest.py): a prompt with a blocked term is refused
over HTTP at once, naming the field, and one posted straight to the command log is rejected by the
aggregate as `VariationRejected`, with the reason readable through the API; every other variation is
drawn with the policy's negative prompt after its own, for every model, and keeps its own as asked."""

from __future__ import annotations

import json

import httpx

from inference.cutting import read_metadata
from streams import codec, topics
from streams import messages as m
from tests.builders import create_body, create_variation, generation, generation_body
from tests.e2e.test_http import wait_for
from tests.integration.kafka import produce, read_until
from tests.waiting import until

GENERATION = generation_body("a kayak on a calm lake", 3, negativePrompt="text")


def test_a_prompt_with_a_blocked_term_is_refused_over_http_naming_the_field(api: httpx.Client) -> None:
    body = create_body("brand-refused", {**GENERATION, "prompt": "a can of RIVAL  Cola on a lake"})
    r = api.post("/api/images/variations", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "generation.prompt", "message": r.json()["message"]}]
    assert "['rival cola']" in r.json()["message"]
    assert api.get("/api/images/variations/name/brand-refused").status_code == 404
    print(f"\nHTTP: 422 {r.json()['message']}")


async def test_a_blocked_prompt_posted_to_the_command_log_is_rejected_with_the_reason(api, stack) -> None:
    command = create_variation(
        "brand-kafka",
        families=("square",),
        generation=generation("gore on the beach", 1),
        command_id=m.derive_id("brand", "kafka"),
    )
    await produce(stack.bootstrap_servers, topics.COMMANDS, command.key, codec.encode(command))
    found = until(
        lambda: api.get(f"/api/images/commands/{command.command_id}").json(),
        "the command decided",
        60,
        every=0.2,
        done=lambda answer: answer["status"] != "pending",
    )
    assert found["status"] == "rejected", found
    assert found["reason"] == "the prompt has terms the brand policy blocks: ['gore']"
    assert api.get(f"/api/images/variations/{command.variation_id}").status_code == 404
    log = await read_until(stack.bootstrap_servers, topics.EVENTS, lambda rs: bool(rs), lambda r: r.key == command.key)
    assert [json.loads(r.value)["type"] for r in log] == ["VariationRejected"]  # nothing was requested or drawn
    print(f"\ncommand log: VariationRejected, GET /commands/{{id}} says: {found['reason']}")


async def test_every_drawing_adds_the_policy_s_negative_prompt_to_the_variation_s_own(api, stack) -> None:
    body = create_body("brand-kayak", GENERATION, families=["square", "hero"])
    r = api.post("/api/images/variations", json=body)
    assert r.status_code == 202, r.text
    done = wait_for(api, r.json()["id"])
    assert done["status"] == "completed", done
    assert done["generation"]["negativePrompt"] == "text"  # the variation's own, as asked
    drawn_with = {
        f["name"]: read_metadata(api.get(f["publicUrl"]).content)["negative_prompt"] for f in done["families"]
    }
    assert drawn_with == {"square": "text, competitor logo", "hero": "text, competitor logo"}
    key = str(done["id"]).encode()
    jobs = []
    for family in ("square", "hero"):
        records = await read_until(stack.bootstrap_servers, topics.family(family), bool, lambda r: r.key == key)
        jobs += [json.loads(r.value) for r in records]
    assert [j["brand_negative_prompt"] for j in jobs] == ["competitor logo", "competitor logo"]
    print(f"\ndrawn with negative prompts {drawn_with}; the read model keeps {done['generation']['negativePrompt']!r}")
