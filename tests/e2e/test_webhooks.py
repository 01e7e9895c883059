"""End to end through HTTP: a service that cannot read Kafka subscribes to the domain events with a
webhook, and a variation made through the API reaches it, signed, once per event, retried after it
failed; the delivery log tells the story. The `imagegen webhooks` process of the session's stack
posts to a real receiver on a loopback port."""

from __future__ import annotations

import asyncio
import time

import pytest

from imagegen.config import Settings
from streams import codec, topics
from streams import messages as m
from tests.builders import create_body, generation_body
from tests.integration.kafka import produce, read_until
from tests.waiting import variation as wait_for
from tests.webhook_receiver import Receiver

SECRET = "e2e-webhook-secret-0123456789"
NAME = "webhook-story"
VARIATION = create_body(
    NAME, generation_body("a lighthouse at dawn", 11), families=["facebook-og"], category="webhooks"
)
DONE = ("completed", "partial", "failed", "cancelled")


def first_one_fails(path: str, before: list) -> int:
    # the very first delivery to /all is refused once: the dispatcher must come back
    return 500 if path == "/all" and not any(r.path == "/all" for r in before) else 200


def domain_events(stack, until_round: int) -> list:
    """The variation's domain events as they are on the topic, up to its `until_round`th outcome."""
    key = str(m.variation_id(NAME)).encode()
    return asyncio.run(
        read_until(
            stack.bootstrap_servers,
            topics.DOMAIN_EVENTS,
            lambda seen: sum(b"IMAGE_VARIATION_COMPLETED" in r.value for r in seen) >= until_round,
            keep=lambda r: r.key == key,
        )
    )


@pytest.fixture(scope="module")
def receiver(api) -> Receiver:
    with Receiver(first_one_fails) as running:
        yield running
        for hook in api.get("/api/images/webhooks").json()["items"]:  # nothing left posting to a closed port
            if hook["url"].startswith(running.url):
                api.delete(f"/api/images/webhooks/{hook['id']}")


@pytest.fixture(scope="module")
def story(api, receiver, stack) -> dict:
    """Two subscriptions, one to every event and one to completions only; then a variation."""
    everything = api.post(
        "/api/images/webhooks", json={"url": f"{receiver.url}/all", "secret": SECRET, "description": "all"}
    )
    assert everything.status_code == 201, everything.text
    assert "secret" not in everything.json()  # the caller chose it: not sent back
    receiver.secrets["/all"] = SECRET
    completions = api.post(
        "/api/images/webhooks", json={"url": f"{receiver.url}/completed", "events": ["IMAGE_VARIATION_COMPLETED"]}
    )
    assert completions.status_code == 201, completions.text
    made = completions.json()["secret"]  # made for the caller, shown this once
    assert len(made) >= 32 and "secret" not in api.get(completions.headers["location"]).json()
    receiver.secrets["/completed"] = made

    began = time.perf_counter()
    created = api.post("/api/images/variations", json=VARIATION)
    assert created.status_code == 202, created.text
    wait_for(api, created.json()["id"], lambda v: v["status"] in DONE)
    events = domain_events(stack, until_round=1)
    ids = {codec.decode_domain_event(r.value).id for r in events}
    receiver.wait(lambda r: {str(x.event["id"]) for x in r.at("/all") if x.accepted} >= {str(i) for i in ids})
    print(f"\nPOST to every webhook delivered: {time.perf_counter() - began:.2f} s for {len(events)} events")
    return {"all": everything.json(), "completed": completions.json(), "events": events}


def test_every_domain_event_of_the_variation_arrives_once_accepted_signed_and_as_on_the_wire(receiver, story):
    received = [r for r in receiver.at("/all") if r.event["variationId"] == str(m.variation_id(NAME))]
    assert all(r.signed for r in received)  # verified with webhooks.signing.verify and the secret
    accepted = [r for r in received if r.accepted]
    wire = {codec.decode_domain_event(e.value).id: e.value for e in story["events"]}
    assert sorted(r.event["id"] for r in accepted) == sorted(str(i) for i in wire)  # each exactly once
    assert [e["type"] for e in (r.event for r in accepted)].count("IMAGE_FAMILY_COMPLETED") == 1
    for r in accepted:
        assert r.body == wire[codec.decode_domain_event(r.body).id]  # the domain event's own JSON, byte for byte
        assert r.event_type == r.event["type"] and r.headers["content-type"] == "application/json"
        assert r.headers["user-agent"].startswith("imagegen-webhooks/")
    assert len({r.delivery for r in accepted}) == len(accepted)


def test_the_refused_first_delivery_came_again_after_a_backoff(receiver, story):
    refused, *rest = receiver.at("/all")
    assert refused.status == 500 and refused.signed
    (again,) = [r for r in rest if r.delivery == refused.delivery]  # the same delivery id: receivers dedupe on it
    assert again.accepted and again.body == refused.body
    base = Settings().webhook_backoff_s  # the dispatcher's, from the same environment
    waited = again.at - refused.at
    assert base <= waited < base * 1.25 + 1.0, waited
    print(f"\nretried after {waited:.2f} s (backoff {base} s + up to 25 % jitter)")


def test_the_delivery_log_shows_every_attempt_newest_first(api, receiver, story):
    hook = story["all"]["id"]
    log = api.get(f"/api/images/webhooks/{hook}/deliveries").json()["items"]
    ours = {str(codec.decode_domain_event(e.value).id) for e in story["events"]}
    mine = [d for d in log if d["eventId"] in ours]
    assert len(mine) == len(ours) and {d["status"] for d in mine} == {"delivered"}
    assert [d["createdAt"] for d in log] == sorted((d["createdAt"] for d in log), reverse=True)
    refused = receiver.at("/all")[0].delivery
    (retried,) = [d for d in mine if d["id"] == refused]
    assert retried["attempts"] == 2 and [a["statusCode"] for a in retried["attemptLog"]] == [500, 200]
    assert retried["attemptLog"][0]["error"] == "HTTP 500" and retried["deliveredAt"] is not None
    assert all(d["attempts"] == 1 and d["lastStatusCode"] == 200 for d in mine if d["id"] != refused)
    assert all(a["durationMs"] >= 0 for d in mine for a in d["attemptLog"])


def test_a_subscription_to_completions_gets_only_those(receiver, story):
    (completed,) = [codec.decode_domain_event(e.value) for e in story["events"] if b"VARIATION_COMPLETED" in e.value]
    got = receiver.at("/completed")
    assert [r.event["id"] for r in got] == [str(completed.id)]
    assert got[0].signed and got[0].accepted and got[0].event_type == "IMAGE_VARIATION_COMPLETED"


def test_a_domain_event_delivered_again_by_kafka_is_not_posted_again(api, receiver, story, stack):
    completed = next(e for e in story["events"] if b"VARIATION_COMPLETED" in e.value)
    asyncio.run(produce(stack.bootstrap_servers, topics.DOMAIN_EVENTS, completed.key, completed.value))
    # a regenerate's events follow the copy in the same partition: once they are in, the copy was read
    vid = str(m.variation_id(NAME))
    assert api.post(f"/api/images/variations/{vid}/regenerate").status_code == 202
    wait_for(api, vid, lambda v: v["round"] == 2 and v["status"] in DONE)
    round_two = {codec.decode_domain_event(e.value).id for e in domain_events(stack, until_round=2)} - {
        codec.decode_domain_event(e.value).id for e in story["events"]
    }
    receiver.wait(lambda r: {str(i) for i in round_two} <= {x.event["id"] for x in r.at("/completed") + r.at("/all")})
    event_id = str(codec.decode_domain_event(completed.value).id)
    log = api.get(f"/api/images/webhooks/{story['completed']['id']}/deliveries").json()["items"]
    assert [d["eventId"] for d in log].count(event_id) == 1
    assert [r.event["id"] for r in receiver.at("/completed")].count(event_id) == 1
    assert [r.event["id"] for r in receiver.at("/all") if r.accepted].count(event_id) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({}, "url"),
        ({"url": "https://example.com/hook", "events": ["IMAGE_EXPLODED"]}, "events"),
        ({"url": "https://example.com/hook", "events": "IMAGE_VARIATION_COMPLETED"}, "events"),
        ({"url": "https://example.com/hook", "secret": "short"}, "secret"),
        ({"url": "https://example.com/hook", "colour": "red"}, "colour"),
    ],
)
def test_bad_subscriptions_get_a_422_naming_the_field(api, body, field):
    r = api.post("/api/images/webhooks", json=body)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]] and field in r.json()["message"]


def test_a_deleted_subscription_is_gone_with_its_log(api):
    made = api.post("/api/images/webhooks", json={"url": "https://example.com/hook"}).json()
    assert made["id"] in [h["id"] for h in api.get("/api/images/webhooks").json()["items"]]
    assert api.delete(f"/api/images/webhooks/{made['id']}").status_code == 204
    for path in (f"/webhooks/{made['id']}", f"/webhooks/{made['id']}/deliveries", "/webhooks/not-a-uuid"):
        assert api.get(f"/api/images{path}").status_code == 404
    assert api.delete(f"/api/images/webhooks/{made['id']}").status_code == 404
