"""The one-shot GPU proof (bench/gpu.py) cannot rot: its smoke configuration runs here, on the CPU with
the tiny model, through every step the GPU run takes, and writes its table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_proof_runs_on_the_cpu_and_writes_its_table(tmp_path: Path) -> None:
    env = {**os.environ, "MODEL_CACHE_DIR": str(tmp_path / "models"), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "bench/gpu.py", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    proof = json.loads((tmp_path / "gpu.json").read_text())
    table = (tmp_path / "gpu.md").read_text()
    print("\n" + table)
    runs = {(r["config"], r["batch"], r["steps"]): r for r in proof["runs"]}
    assert runs["diffusers fp32", 2, 2]["identical_pixels"] is True  # the same seed twice, the same pixels
    assert "fp8 needs an NVIDIA GPU with float8 tensor cores" in runs["bf16,fp8", 2, 2]["error"]
    best = [r for r in proof["runs"] if r["config"] == "fused_qkv,channels_last"]
    assert {(r["batch"], r["steps"]) for r in best} == {(1, 2), (2, 2), (1, 3), (2, 3)}
    assert all(r["images_per_s"] > 0 and r["warmup_s"] > 0 for r in best)
    assert any(r["identical_pixels"] for r in best)
    assert "| fused_qkv,channels_last | 2 | 3 |" in table and "vs diffusers" in table
    (refine,) = [r for r in proof["runs"] if r["config"].startswith("hi-res pass 0.3 at 320x136")]
    assert refine["error"] is None and refine["images_per_s"] > 0
