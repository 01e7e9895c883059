"""The benchmarks run end to end (IMAGEGEN_BENCH=1; skipped by default: they measure, they do not test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[2]


def test_the_latency_benchmark_prints_its_percentiles() -> None:
    ran = subprocess.run(
        [sys.executable, str(ROOT / "bench/latency.py"), "--count", "5"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "POST -> VariationCompleted" in ran.stdout and "minus drawing (the overhead)" in ran.stdout
    print(ran.stdout)
