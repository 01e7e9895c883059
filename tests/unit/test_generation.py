"""Drawing masters with the built-in tiny SDXL pipeline: built offline, seeded, prompt-driven,
validated first, and resized to each family's master size."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from safetensors import safe_open

from inference import models
from inference.generation import (
    GenerationParams,
    InvalidGenerationInput,
    batch_key,
    draw_size,
    generate,
    generate_batch,
    refine_size,
)
from inference.models import REGISTRY, ModelUnavailable, Pipelines, UnknownModel, registry
from inference.tiny import build_tiny
from streams import families
from streams.families import Family
from tests.unit import original_checkpoint

TINY = REGISTRY["tiny"]
# drawn at the smallest size (64x64), so that the seeded comparisons stay fast
SMALL = Family("small", "1:1", 96, 96, drawn_width=512, drawn_height=512, derivatives=())
PARAMS = GenerationParams("a lighthouse on a cliff at dusk", "", seed=7, steps=2, guidance=5.0)


@pytest.fixture(scope="module", autouse=True)
def two_threads() -> Iterator[None]:
    # same pixels need the same thread count; two is this machine's size
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-sdxl")


@pytest.fixture(scope="module")
def pipeline(tiny: Path) -> StableDiffusionXLPipeline:
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny, dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pixels(pipeline: StableDiffusionXLPipeline, **changes: object) -> bytes:
    return generate(pipeline, TINY, dataclasses.replace(PARAMS, **changes), SMALL).write_to_memory()


# --- the tiny model --------------------------------------------------------------------------


def test_the_tiny_build_is_offline_and_byte_for_byte_reproducible(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tiny build touched the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    again = build_tiny(tmp_path / "again")

    files = sorted(p.relative_to(tiny) for p in tiny.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert Path("unet/diffusion_pytorch_model.safetensors") in files
    for name in files:
        assert (tiny / name).read_bytes() == (again / name).read_bytes(), name
    # nothing is left beside it from the atomic build
    assert [p.name for p in tmp_path.iterdir()] == ["again"]


def test_an_existing_build_is_returned_as_it_is(tiny: Path) -> None:
    before = (tiny / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert build_tiny(tiny) == tiny
    assert (tiny / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == before


def test_the_tokenizers_give_real_clip_ids(pipeline: StableDiffusionXLPipeline) -> None:
    clip = [49406, 320, 1125, 539, 320, 2368, 49407]  # "a photo of a cat", as OpenAI's CLIP encodes it
    first = pipeline.tokenizer("a photo of a cat", padding="max_length", max_length=77).input_ids
    second = pipeline.tokenizer_2("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert first == clip + [49407] * 70
    assert second == clip + [0] * 70  # SDXL's second tokenizer pads with "!"


# --- sizes -----------------------------------------------------------------------------------


def test_tiny_draws_at_an_eighth_of_the_sdxl_bucket_and_real_models_at_the_bucket() -> None:
    table = families.load()
    assert draw_size(table.get("square"), TINY) == (128, 128)
    assert draw_size(table.get("landscape"), TINY) == (168, 96)
    assert draw_size(table.get("hero"), TINY) == (192, 80)
    assert draw_size(SMALL, TINY) == (64, 64)
    assert draw_size(table.get("landscape"), REGISTRY["photorealistic"]) == (1344, 768)


@pytest.mark.parametrize("family", families.load(), ids=lambda f: f.name)
def test_the_master_has_the_family_size(pipeline: StableDiffusionXLPipeline, family: Family) -> None:
    master = generate(pipeline, TINY, dataclasses.replace(PARAMS, steps=1), family)
    assert (master.width, master.height) == (family.width, family.height)
    assert (master.bands, master.format, master.interpretation) == (3, "uchar", "srgb")


# --- what the pixels depend on ---------------------------------------------------------------


def test_the_same_inputs_draw_the_same_pixels(pipeline: StableDiffusionXLPipeline) -> None:
    assert pixels(pipeline) == pixels(pipeline)


def test_the_seed_the_prompt_the_negative_prompt_and_the_steps_each_change_the_picture(
    pipeline: StableDiffusionXLPipeline,
) -> None:
    reference = pixels(pipeline)
    assert pixels(pipeline, seed=8) != reference
    assert pixels(pipeline, prompt="a red bicycle in the rain") != reference
    assert pixels(pipeline, negative_prompt="blurry, low quality") != reference
    assert pixels(pipeline, steps=4) != reference
    assert pixels(pipeline, guidance=1.0) != reference


# --- validation comes first ------------------------------------------------------------------


class NeverCalled:
    def __call__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the pipeline ran on invalid input")


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("prompt", ""),
        ("prompt", "   "),
        ("negative_prompt", None),
        ("seed", -1),
        ("seed", 2**64),
        ("seed", True),
        ("steps", 0),
        ("steps", 2.5),
        ("guidance", -1.0),
        ("guidance", float("nan")),
        ("refine", -0.1),
        ("refine", 0.95),
        ("refine", True),
    ],
)
def test_invalid_input_is_refused_naming_the_argument(argument: str, value: object) -> None:
    params = dataclasses.replace(PARAMS, **{argument: value})
    with pytest.raises(InvalidGenerationInput, match=f"`{argument}`") as refused:
        generate(NeverCalled(), TINY, params, SMALL)
    assert refused.value.argument == argument


# --- the registry ----------------------------------------------------------------------------


def test_model_sources_come_from_the_environment() -> None:
    specs = registry({"MODEL_TURBO_SOURCE": "/models/turbo.safetensors", "MODEL_TURBO_CONFIG": "/models/cfg"})
    assert (specs["turbo"].source, specs["turbo"].kind, specs["turbo"].config) == (
        "/models/turbo.safetensors",
        "single_file",
        "/models/cfg",
    )
    assert (specs["turbo"].default_steps, specs["turbo"].default_guidance) == (1, 0.0)
    assert specs["photorealistic"].kind == "hub"


def test_an_unknown_model_is_named_with_the_known_ones() -> None:
    with pytest.raises(UnknownModel, match=r"'sdxl-nope'.*anime, photorealistic, tiny, turbo"):
        Pipelines().get("sdxl-nope")


def test_a_model_missing_from_the_cache_is_unavailable_and_nothing_is_downloaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("tried to download"))
    specs = registry({"MODEL_ANIME_SOURCE": "imagegen-tests/no-such-model"})
    pipelines = Pipelines(specs)
    assert not pipelines.available("anime")
    with pytest.raises(ModelUnavailable, match=r"'anime'.*'imagegen-tests/no-such-model'"):
        pipelines.get("anime")
    assert pipelines.loaded() == []


def test_a_single_file_checkpoint_loads_offline_and_draws_what_its_folder_draws(
    tiny: Path, pipeline: StableDiffusionXLPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the tiny pipeline written in the original (ldm) layout that JuggernautXL and friends ship in;
    # diffusers converts it back with the configs and tokenizers of the folder MODEL_*_CONFIG names
    checkpoint = original_checkpoint.write(pipeline, tmp_path / "juggernaut-tiny.safetensors")
    with safe_open(checkpoint, "pt") as written:
        assert {
            "model.diffusion_model.input_blocks.0.0.weight",
            "first_stage_model.decoder.up.0.block.0.conv1.weight",
            "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
        } <= set(written.keys())
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("tried to download"))
    specs = registry({"MODEL_PHOTOREALISTIC_SOURCE": str(checkpoint), "MODEL_PHOTOREALISTIC_CONFIG": str(tiny)})
    pipelines = Pipelines(specs, device="cpu")
    assert pipelines.available("photorealistic")
    _, loaded = pipelines.get("photorealistic")
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        ours, theirs = getattr(pipeline, name).state_dict(), getattr(loaded, name).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name
    alone = np.frombuffer(pixels(pipeline), np.uint8).astype(int)
    difference = np.abs(alone - np.frombuffer(pixels(loaded), np.uint8))
    # the same weights, in tensors at other memory alignments: BLAS may round one matmul differently
    assert difference.max() <= 1 and (difference > 0).mean() < 0.001
    # without its config folder, a single file is unavailable, with a reason that names the setting
    missing = registry({"MODEL_PHOTOREALISTIC_SOURCE": str(checkpoint), "MODEL_PHOTOREALISTIC_CONFIG": "/nowhere"})
    with pytest.raises(ModelUnavailable, match="MODEL_PHOTOREALISTIC_CONFIG"):
        Pipelines(missing, device="cpu").get("photorealistic")


def test_a_pipeline_is_loaded_once_and_listed(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("inference.tiny.tiny_path", lambda cache_dir: tiny)
    pipelines = Pipelines()
    spec, first = pipelines.get("tiny")
    assert spec is TINY
    assert pipelines.get("tiny")[1] is first
    assert pipelines.loaded() == ["tiny"]
    listed = {m["name"]: m for m in models.list_models(pipelines)}
    assert listed["tiny"] == {
        "name": "tiny",
        "description": TINY.description,
        "source": TINY.source,
        "defaultSteps": 4,
        "defaultGuidance": 5.0,
        "defaultRefine": 0.0,
        "memoryGb": 0.05,
        "loaded": True,
        "available": True,
    }
    assert listed["photorealistic"]["loaded"] is False
    assert listed["photorealistic"]["memoryGb"] == 8.0


def test_models_share_the_device_within_a_budget_least_recently_used_unloaded_first(tiny: Path) -> None:
    # three models from the same tiny folder (0.025 GB loaded), each planned at 0.03 GB, under 0.07 GB:
    # two fit, a third does not
    specs = {
        name: models.ModelSpec(name, str(tiny), name, default_steps=2, default_guidance=5.0, memory_gb=0.03)
        for name in ("a", "b", "c")
    }
    pipelines = Pipelines(specs, device="cpu", budget_gb=0.07)
    pipelines.get("a")
    pipelines.get("b")
    assert pipelines.loaded() == ["a", "b"]
    assert 0.02 < pipelines.sizes_gb()["a"] < 0.03
    pipelines.get("a")  # a is used again: b is now the least recent
    pipelines.get("c")
    assert pipelines.loaded() == ["a", "c"]
    unlimited = Pipelines(specs, device="cpu", budget_gb=0)
    for name in specs:
        unlimited.get(name)
    assert unlimited.loaded() == ["a", "b", "c"]


# --- batching ---------------------------------------------------------------------------------


def test_a_batch_draws_each_job_as_it_would_be_drawn_alone(pipeline: StableDiffusionXLPipeline) -> None:
    landscape = families.load().get("landscape")
    batch = [
        PARAMS,
        dataclasses.replace(PARAMS, prompt="a red car on a coast road", seed=8),
        dataclasses.replace(PARAMS, prompt="snowy peaks under stars", seed=9),
    ]
    together = [np.frombuffer(i.write_to_memory(), np.uint8) for i in generate_batch(pipeline, TINY, batch, landscape)]
    for params, batched in zip(batch, together, strict=True):
        alone = np.frombuffer(generate(pipeline, TINY, params, landscape).write_to_memory(), np.uint8)
        difference = np.abs(alone.astype(int) - batched.astype(int))
        # one generator per job: the same picture, up to float rounding of a batched matmul
        assert difference.max() <= 1 and (difference > 0).mean() < 0.001
    assert not np.array_equal(together[0], together[1])


def test_a_batch_must_share_one_call_s_settings(pipeline: StableDiffusionXLPipeline) -> None:
    for other in (dataclasses.replace(PARAMS, steps=3), dataclasses.replace(PARAMS, negative_prompt="blurry")):
        with pytest.raises(InvalidGenerationInput, match="`batch`"):
            generate_batch(pipeline, TINY, [PARAMS, other], SMALL)
    assert batch_key(PARAMS) == batch_key(dataclasses.replace(PARAMS, prompt="other", seed=1))
    assert batch_key(PARAMS) != batch_key(dataclasses.replace(PARAMS, refine=0.3))  # one strength a call


# --- the hi-res pass -------------------------------------------------------------------------


def test_a_hi_res_pass_is_reproducible_byte_for_byte_and_changes_the_picture(
    pipeline: StableDiffusionXLPipeline,
) -> None:
    landscape = families.load().get("landscape")
    steps: list[tuple[int, int]] = []

    def drawn(refine: float) -> bytes:
        params = dataclasses.replace(PARAMS, steps=10, refine=refine)
        return generate_batch(pipeline, TINY, [params], landscape, lambda *s: steps.append(s))[0].write_to_memory()

    plain, refined = drawn(0.0), drawn(0.3)
    counted, steps[:] = list(steps), []
    assert drawn(0.3) == refined  # seeded from the job's seed: a regenerate draws the same pixels
    assert refined != plain and drawn(0.5) != refined
    # drawn at the bucket, then refined at the master's size (times the model's draw scale)
    assert draw_size(landscape, TINY) == (168, 96) and refine_size(landscape, TINY) == (240, 136)
    # 10 steps drawn, then int(10 x 0.3) = 3 refined: the progress counts on to 13 of 13
    assert counted[-4:] == [(10, 13), (11, 13), (12, 13), (13, 13)]
    mean = np.abs(np.frombuffer(plain, np.uint8).astype(int) - np.frombuffer(refined, np.uint8)).mean()
    print(f"\n  refine 0.3 moves the landscape master's pixels by {mean:.1f} levels on average")
