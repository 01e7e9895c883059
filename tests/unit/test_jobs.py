"""A family job on its own: drawn, cut and stored by the real tiny pipeline into real files; an
out-of-memory error becomes a retryable FamilyFailed and the worker goes on serving."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from imagegen.config import Settings
from inference.models import Pipelines
from storage import FileStorage
from streams import codec, operational
from streams import jobs as jobs_module
from streams import messages as m
from streams.families import load
from streams.jobs import FamilyJobs, batches
from tests.builders import generate_family, generation

GEN = generation("a kite over dunes", 11)


@pytest.fixture(scope="module")
def family_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FamilyJobs]:
    root = tmp_path_factory.mktemp("jobs")
    settings = Settings(model_cache_dir=root / "models", storage_path=root / "images")
    # the tiny weights are built here (MODEL_CACHE_DIR), not in the checkout
    yield FamilyJobs(settings, load(), FileStorage(settings.storage_path))


def job(name: str, family: str = "facebook-og") -> m.GenerateFamily:
    return generate_family(name, family, GEN)


def test_a_job_stores_its_master_and_every_derivative(family_jobs: FamilyJobs) -> None:
    outcome = asyncio.run(family_jobs.run(job("kite-dunes")))
    assert isinstance(outcome, m.FamilyCompleted)
    root = Path(family_jobs.storage.root)
    assert (root / "kite-dunes/masters/facebook-og.webp").stat().st_size == outcome.master.bytes
    assert sorted(d.name for d in outcome.derivatives) == ["facebook-link", "linkedin-share", "og-image"]
    for d in outcome.derivatives:
        assert (root / d.key).stat().st_size == d.bytes


def test_out_of_memory_fails_retryably_frees_memory_and_the_worker_goes_on(
    family_jobs: FamilyJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = []
    real_generate = jobs_module.generate_batch

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(jobs_module, "generate_batch", exhausted)
    monkeypatch.setattr(Pipelines, "release_memory", lambda self: released.append(True))
    failed = asyncio.run(family_jobs.run(job("oom-first")))
    assert isinstance(failed, m.FamilyFailed)
    assert failed.retryable and failed.error_kind == "OutOfMemoryError" and "out of memory" in failed.message
    assert released == [True]

    monkeypatch.setattr(jobs_module, "generate_batch", real_generate)
    assert isinstance(asyncio.run(family_jobs.run(job("after-oom"))), m.FamilyCompleted)


def test_any_other_error_is_a_failed_family_not_a_crash(family_jobs: FamilyJobs, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise ValueError("the scheduler exploded")

    monkeypatch.setattr(jobs_module, "generate_batch", broken)
    failed = asyncio.run(family_jobs.run(job("broken")))
    assert isinstance(failed, m.FamilyFailed) and not failed.retryable
    assert failed.error_kind == "ValueError" and failed.message == "the scheduler exploded"


def test_waiting_jobs_are_grouped_by_what_one_pipeline_call_can_share() -> None:
    a = job("a")
    b = job("b").model_copy(update={"generation": GEN.model_copy(update={"seed": 2, "prompt": "other"})})
    c = job("c").model_copy(update={"generation": GEN.model_copy(update={"steps": 3})})
    d = job("d").model_copy(update={"generation": GEN.model_copy(update={"negative_prompt": "blurry"})})
    e = job("e").model_copy(update={"generation": GEN.model_copy(update={"model": "turbo"})})
    f = job("f")
    assert batches([a, b, c, d, e, f]) == [[a, b, f], [c], [d], [e]]


def test_each_denoising_step_is_reported_in_order(family_jobs: FamilyJobs) -> None:
    steps = []
    drawn = job("kite-steps").model_copy(update={"generation": GEN.model_copy(update={"steps": 5})})
    outcome = asyncio.run(family_jobs.run_batch([drawn], report=steps.append))[0]
    assert isinstance(outcome, m.FamilyCompleted)
    steps = [p for p in steps if isinstance(p, operational.FamilyProgress)]  # the previews between them: below
    assert [(p.step, p.steps) for p in steps] == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    assert {p.job_id for p in steps} == {drawn.job_id}


def test_a_cancelled_job_stops_at_the_next_step_and_stores_nothing(family_jobs: FamilyJobs) -> None:
    steps: list[operational.FamilyProgress] = []
    drawn = job("kite-cancelled").model_copy(update={"generation": GEN.model_copy(update={"steps": 20})})
    outcome = asyncio.run(family_jobs.run_batch([drawn], cancelled=lambda j: len(steps) >= 3, report=steps.append))[0]
    assert isinstance(outcome, m.FamilyCancelled)
    assert outcome.steps == 20 and 3 <= outcome.at_step < 20, outcome  # reports reach the loop a little late
    assert not (Path(family_jobs.storage.root) / "kite-cancelled").exists()


def test_a_job_cancelled_before_it_reaches_the_device_is_not_drawn(family_jobs: FamilyJobs) -> None:
    outcome = asyncio.run(family_jobs.run_batch([job("kite-never")], cancelled=lambda j: True))[0]
    assert isinstance(outcome, m.FamilyCancelled) and outcome.at_step == 0


def test_in_a_batch_only_the_cancelled_job_is_let_go(family_jobs: FamilyJobs) -> None:
    kept, dropped = job("kite-kept"), job("kite-dropped")
    outcomes = asyncio.run(family_jobs.run_batch([kept, dropped], cancelled=lambda j: j is dropped))
    assert isinstance(outcomes[0], m.FamilyCompleted)
    assert isinstance(outcomes[1], m.FamilyCancelled) and outcomes[1].at_step == outcomes[1].steps
    root = Path(family_jobs.storage.root)
    assert (root / "kite-kept").exists() and not (root / "kite-dropped").exists()


def test_a_drawing_past_its_deadline_fails_retryably_and_the_worker_goes_on(family_jobs: FamilyJobs) -> None:
    slow = job("kite-slow").model_copy(update={"generation": GEN.model_copy(update={"steps": 150})})
    strict = FamilyJobs(
        family_jobs.settings.model_copy(update={"generation_deadline_s": 1.0}), family_jobs.table, family_jobs.storage
    )
    strict.pipelines = family_jobs.pipelines  # the model already loaded: the deadline is the drawing's
    failed = asyncio.run(strict.run(slow))
    assert isinstance(failed, m.FamilyFailed), failed
    assert failed.error_kind == "DeadlineExceeded" and failed.retryable
    assert "exceeded the 1 s deadline at step" in failed.message
    assert not (Path(family_jobs.storage.root) / "kite-slow").exists()
    assert isinstance(asyncio.run(strict.run(job("kite-quick"))), m.FamilyCompleted)


def test_previews_go_out_between_the_steps_in_order_and_never_for_the_last(family_jobs: FamilyJobs) -> None:
    assert family_jobs.settings.preview_every_steps == 4  # the default: a preview every 4 steps
    every_step = family_jobs.settings.model_copy(update={"preview_every_steps": 1})
    previewing = FamilyJobs(every_step, load(), family_jobs.storage)
    previewing.preview_interval_s = 0.0  # every step's preview, however fast the tiny model draws
    reported: list[operational.Progress] = []
    drawn = generate_family("previewed", "square", generation("a kite over dunes", 11, steps=4))
    outcome = asyncio.run(previewing.run_batch([drawn], report=reported.append))[0]
    assert isinstance(outcome, m.FamilyCompleted)
    said = [(type(r).__name__, r.step) for r in reported]
    assert said == [
        ("FamilyProgress", 1),
        ("FamilyPreview", 1),
        ("FamilyProgress", 2),
        ("FamilyPreview", 2),
        ("FamilyProgress", 3),
        ("FamilyPreview", 3),
        ("FamilyProgress", 4),
    ]
    first = next(r for r in reported if isinstance(r, operational.FamilyPreview))
    assert first.job_id == drawn.job_id and first.steps == 4 and max(first.width, first.height) == 256
    assert base64.b64decode(first.image)[8:12] == b"WEBP"


def test_a_worker_compiling_its_shapes_says_warming_in_its_heartbeat(family_jobs: FamilyJobs) -> None:
    assert family_jobs.heartbeat(("square",)).state == "ready"
    assert not family_jobs.compiles("tiny")  # the levers are for real models: tiny is never compiled
    family_jobs.warming = True
    try:
        beat = family_jobs.heartbeat(("square",))
        assert beat.state == "warming" and codec.decode_heartbeat(codec.encode(beat)).state == "warming"
    finally:
        family_jobs.warming = False
