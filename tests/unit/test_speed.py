"""Speed levers as configuration: refused by name when unknown, and pulled on a real pipeline without
changing the picture beyond rounding; fp8 refused where it cannot run. The GPU proof's smoke run is
tests/unit/test_gpu_proof.py."""

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


def test_fp8_is_refused_where_there_are_no_float8_tensor_cores_and_without_bf16() -> None:
    with pytest.raises(speed.UnknownLever, match="fp8 needs bf16"):
        speed.parse("fp8")
    with pytest.raises(speed.LeverRefused, match="fp8 needs an NVIDIA GPU with float8 tensor cores") as refused:
        speed.check(speed.parse("bf16,fp8"), "cpu")
    assert "this worker draws on cpu" in str(refused.value)
    speed.check(speed.parse("bf16,fused_qkv"), "cpu")  # the other levers are the device's to take


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU story: where CUDA is, the worker may pull fp8")
def test_a_worker_asked_for_fp8_on_a_cpu_stops_at_start_saying_why(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SPEED_LEVERS": "bf16,fp8",
        "MODEL_CACHE_DIR": str(tmp_path),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "imagegen.cli", "worker"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    print(f"\n  {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 1 and "fp8 needs an NVIDIA GPU with float8 tensor cores" in done.stderr
    assert "Traceback" not in done.stderr
