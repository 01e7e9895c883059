"""Log records about a job carry its identity, in text lines and JSON lines alike."""

from __future__ import annotations

import io
import json
import logging

import pytest

from streams import logs
from streams import messages as m
from tests.builders import generate_family, generation

GEN = generation("a pier", 1)


def job(name: str) -> m.GenerateFamily:
    return generate_family(name, "hero", GEN)


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch):
    def capture(form: str) -> io.StringIO:
        out = io.StringIO()
        monkeypatch.setattr("sys.stderr", out)
        logs.setup(form, "INFO", "worker")
        return out

    yield capture
    logs.setup("text", "INFO")


def test_json_lines_name_the_job_they_are_about(lines) -> None:
    out, pier, dock = lines("json"), job("pier"), job("dock")
    log = logging.getLogger("imagegen.test")
    log.info("outside")
    with logs.about(pier):
        log.warning("drawing %s", "pier")
    with logs.about(pier, dock):
        log.info("a batch")
    outside, one, batch = (json.loads(line) for line in out.getvalue().splitlines())
    assert outside == {
        "level": "INFO",
        "logger": "imagegen.test",
        "message": "outside",
        "service": "worker",
        "time": outside["time"],
    }
    assert (one["variation_id"], one["variation"], one["family"], one["job_id"]) == (
        str(pier.variation_id),
        "pier",
        "hero",
        str(pier.job_id),
    )
    assert one["level"] == "WARNING" and one["message"] == "drawing pier"
    assert batch["variation"] == ["pier", "dock"] and batch["family"] == "hero"


def test_text_lines_end_with_the_variation_and_family(lines) -> None:
    out = lines("text")
    log = logging.getLogger("imagegen.test")
    with logs.about(job("pier")):
        log.info("drawn")
    log.info("idle")
    drawn, idle = out.getvalue().splitlines()
    assert drawn.endswith("INFO imagegen.test drawn [pier/hero]") and idle.endswith("INFO imagegen.test idle")
