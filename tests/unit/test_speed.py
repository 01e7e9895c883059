"""Speed levers as configuration: refused by name when unknown, and pulled on a real pipeline without
changing the picture beyond rounding. The benchmark runs end to end on the tiny model."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline

from inference import speed
from inference.tiny import build_tiny

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-sdxl-v1")


def draw(pipe: StableDiffusionXLPipeline) -> np.ndarray:
    out = pipe(
        prompt="a lighthouse",
        width=128,
        height=128,
        num_inference_steps=2,
        guidance_scale=5.0,
        generator=torch.Generator("cpu").manual_seed(3),
        output_type="np",
    )
    return out.images[0]


@pytest.mark.parametrize(
    ("text", "error"),
    [("channels_last,warp_drive", "warp_drive"), ("bf16,fp16", "one of"), ("cuda_graphs", "needs compile")],
)
def test_a_bad_lever_is_refused_by_name(text: str, error: str) -> None:
    with pytest.raises(speed.UnknownLever, match=error):
        speed.parse(text)


def test_levers_parse_in_order_without_repeats() -> None:
    assert speed.parse(" bf16, fused_qkv,bf16 ,") == ("bf16", "fused_qkv")
    assert speed.parse("") == ()


def test_levers_keep_the_picture(tiny: Path) -> None:
    plain = StableDiffusionXLPipeline.from_pretrained(tiny, dtype=torch.float32, local_files_only=True)
    plain.set_progress_bar_config(disable=True)
    fast = speed.apply(copy.deepcopy(plain), ("fused_qkv", "channels_last", "vae_tiling"))
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(draw(plain) - draw(fast)).max() < 1e-3
    half = speed.apply(copy.deepcopy(plain), ("bf16",))
    assert half.unet.dtype == torch.bfloat16 and half.vae.dtype == torch.bfloat16


def test_the_benchmark_runs_on_the_tiny_model(tiny: Path) -> None:
    env = {**os.environ, "MODEL_CACHE_DIR": str(tiny.parent)}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/sdxl_speed.py"),
            "--model",
            "tiny",
            "--steps",
            "2",
            "--runs",
            "1",
            "--batch",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert any(line.startswith("diffusers default") and line.split()[2] == "2" for line in lines)
    assert any(line.startswith("imagegen") for line in lines) and any("speed-up" in line for line in lines)
