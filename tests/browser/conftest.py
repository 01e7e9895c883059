"""The browser stories' Chromium (Debian's, driven by Playwright: `playwright install` is never run, and
nothing is fetched from the internet) and an HTTP client on the running stack (the session's `services`).
Without the chromium binary or the playwright package the stories skip, saying which is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from imagegen.services import Services
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import api  # noqa: F401 -- the e2e stories' client, on the same stack

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ARTIFACTS / "screenshots"


@pytest.fixture(scope="session", autouse=True)
def chromium() -> str:
    """Debian's Chromium: without it these stories skip, before any stack is started for them (an autouse
    fixture comes first among the session's)."""
    path = shutil.which(CHROMIUM)
    if path is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make install does it as root)")
    return path


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    """Chromium, headless, driven by Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, services: Services) -> Iterator[Any]:
    """A fresh page on the api, at desktop size; an uncaught error in the page's scripts fails the story."""
    context = browser.new_context(base_url=services.api_url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.loads = []  # every full page load, to tell a live update from a reload
    opened.on("load", lambda loaded: opened.loads.append(loaded.url))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"the page's scripts failed: {errors}"
