"""Session fixtures: the real services (Kafka-protocol broker, Postgres, storage, an S3 server) and the
imagegen processes, started once on free loopback ports by the same launcher as `imagegen dev`."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegen.devstack import DevStack, S3Server, free_port
from imagegen.services import Services

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # pytest then tears the fixtures down: no broker or database outlives a killed run


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _interrupted)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` stories run only where CUDA is, `bench` runs only with IMAGEGEN_BENCH=1; each skip says why."""
    bench = os.environ.get("IMAGEGEN_BENCH") == "1"
    cuda: bool | None = None
    for item in items:
        if "bench" in item.keywords and not bench:
            item.add_marker(pytest.mark.skip(reason="a benchmark: run with IMAGEGEN_BENCH=1"))
        if "gpu" in item.keywords:
            if cuda is None:
                import torch

                cuda = torch.cuda.is_available()
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture(scope="session")
def stack() -> Iterator[DevStack]:
    with DevStack(partitions=4) as running:
        yield running


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """SeaweedFS with signatures on and one bucket (`s3.bucket`); its env() points imagegen at it."""
    with S3Server() as running:
        yield running


@pytest.fixture(scope="session")
def services(stack: DevStack) -> Iterator[Services]:
    """api + worker (every family) + projector, as separate processes, like production."""
    port = free_port()
    env = {
        **stack.env(),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "TORCH_THREADS": "1",
        "MODEL_CACHE_DIR": str(ARTIFACTS / "models"),
        # the brand policy tests/e2e/test_brand_safety.py tells the story of
        "BLOCKED_TERMS": "rival cola,gore",
        "BRAND_NEGATIVE_PROMPT": "competitor logo",
    }
    running = Services(env, ARTIFACTS / "logs", api_port=port)
    try:
        running.start()
        yield running
    finally:
        running.stop()
