"""Any Kafka client can drive imagegen: a `CreateVariation` made from docs/asyncapi.json alone (its
identity rules and its example message, nothing of imagegen's code) is posted with `kcat` (librdkafka,
the library under the C, Go, .NET and confluent-kafka Python clients), and the variation's
`IMAGE_VARIATION_COMPLETED` is read back with `kcat` from the domain-event topic."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from imagegen.devstack import DevStack
from imagegen.services import Services
from tests.waiting import until

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)")


def command_from_the_document(name: str) -> tuple[str, str, str]:
    """(topic, key, value) of a new CreateVariation, by the document's rules only."""
    doc = json.loads(DOCUMENT.read_text())
    identity = doc["info"]["x-identity"]
    topic = doc["channels"]["commands"]["address"]
    (example, *_) = doc["components"]["messages"]["CreateVariation"]["examples"]
    payload = dict(example["payload"])
    namespace = uuid.UUID(identity["namespace"])
    payload["name"] = name
    payload["variation_id"] = str(uuid.uuid5(namespace, name))  # the rule: uuid5(namespace, name)
    payload["command_id"] = str(uuid.uuid4())  # the producer's own, repeated if it retries this command
    payload["generation"] = {**payload["generation"], "steps": 2}
    return topic, payload["variation_id"], json.dumps(payload)


def test_a_command_posted_with_kcat_completes_and_its_domain_event_is_read_with_kcat(
    stack: DevStack, services: Services
) -> None:
    name = f"kcat-{uuid.uuid4().hex[:8]}"
    topic, key, value = command_from_the_document(name)
    servers = stack.bootstrap_servers
    posted = subprocess.run(
        ["kcat", "-P", "-b", servers, "-t", topic, "-k", key, "-X", "enable.idempotence=true"],
        input=value + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert posted.returncode == 0, posted.stderr

    def read_with_kcat() -> list[dict]:
        read = subprocess.run(
            ["kcat", "-C", "-b", servers, "-t", "imagegen.domain-events", "-o", "beginning", "-e", "-q", "-J"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert read.returncode == 0, read.stderr
        records = [json.loads(line) for line in read.stdout.splitlines() if line.strip()]
        return [json.loads(r["payload"]) for r in records if r["key"] == key]

    events = until(
        read_with_kcat,
        f"{name}'s IMAGE_VARIATION_COMPLETED read with kcat",
        180,
        every=1,
        done=lambda events: any(e["type"] == "IMAGE_VARIATION_COMPLETED" for e in events),
    )
    types = [e["type"] for e in events]
    assert "IMAGE_VARIATION_COMPLETED" in types, types
    (done,) = [e for e in events if e["type"] == "IMAGE_VARIATION_COMPLETED"]
    assert done["variationId"] == key and done["publicUrls"], done
    print(f"\nkcat posted {name}; read back {types} from imagegen.domain-events with kcat")
