"""The e2e stories' HTTP client on the running stack (the session's `services`)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from imagegen.services import Services


@pytest.fixture(scope="module")
def api(services: Services) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=services.api_url, timeout=30) as client:
        client.services = services  # type: ignore[attr-defined]  # wait_for checks the services are alive
        yield client
