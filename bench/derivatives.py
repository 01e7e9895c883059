"""Derivative benchmark: what a worker makes of each drawn master (the master's WebP and every
derivative of its family), imagegen against a straightforward Pillow implementation (the master and
each derivative resized with LANCZOS to cover, centre-cropped and saved as WebP at the same quality),
in one run on the same masters: milliseconds per set, the ratio, the bytes written and peak memory.

Ours also finds each master's subject (faces, else libvips entropy) and frames every crop around
it; Pillow's centre crops do neither, so the comparison favours Pillow. Each implementation runs in
its own process, so that its peak resident memory is its own.

    .venv/bin/python bench/derivatives.py              # every family, 5 timed runs
    .venv/bin/python bench/derivatives.py --runs 2 --families square,portrait
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pictures: the synthetic masters

METADATA = {"prompt": "a portrait on a hill at noon", "seed": "7", "model": "tiny", "family": "bench"}
QUALITY = 85


def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak since the last reset) of this process."""
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))
    return kb / 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # Linux: the peak resident size starts again from the current one


def masters(names: list[str]) -> list[tuple[Any, Any]]:
    """Each family and its master's pixels (made once, in the parent process)."""
    from streams import families
    from tests.pictures import FACES, face_master

    table = families.load()
    made = []
    for name in names:
        family = table.get(name)
        centre, size = FACES.get(name, ((0.5, 0.5), 0.2))
        master, _ = face_master(family.width, family.height, centre, size)
        made.append((family, master.numpy()))
    return made


def pillow(family: Any, master: Any) -> int:
    from PIL import Image

    from inference.cutting import xmp_packet

    xmp = xmp_packet(METADATA)
    written = 0
    buffer = io.BytesIO()
    master.save(buffer, "WEBP", quality=QUALITY, xmp=xmp)
    written += buffer.tell()
    for d in family.derivatives:
        scale = max(d.width / master.width, d.height / master.height)
        width, height = max(d.width, round(master.width * scale)), max(d.height, round(master.height * scale))
        resized = master.resize((width, height), Image.Resampling.LANCZOS)
        left, top = (width - d.width) // 2, (height - d.height) // 2
        buffer = io.BytesIO()
        resized.crop((left, top, left + d.width, top + d.height)).save(buffer, "WEBP", quality=QUALITY, xmp=xmp)
        written += buffer.tell()
    return written


def ours(family: Any, master: Any, effort: int) -> int:
    from inference.cutting import Encoding, cut_master

    encoding = Encoding(quality={"webp": QUALITY, "avif": 55, "jpeg": QUALITY}, webp_effort=effort)
    master_webp, _, cuts = cut_master(master, family.derivatives, encoding, METADATA)
    return len(master_webp) + sum(len(c.data) for c in cuts)


def run(implementation: str, sets: list[tuple[Any, Any]], runs: int) -> dict[str, Any]:
    """One implementation over every family's master, in this (child) process."""
    from PIL import Image

    from tests.pictures import to_vips

    inputs = [(f, Image.fromarray(a) if implementation == "pillow" else to_vips(a)) for f, a in sets]
    before = memory_mb("VmRSS")
    reset_peak()
    results: dict[str, Any] = {}
    for family, master in inputs:
        make = {
            "pillow": lambda f=family, m=master: pillow(f, m),
            "ours": lambda f=family, m=master: ours(f, m, 2),
            "ours-effort4": lambda f=family, m=master: ours(f, m, 4),
        }[implementation]
        written = make()  # warm up: codecs, cascade, thread pools
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            make()
            times.append(time.perf_counter() - began)
        results[family.name] = {"ms": 1000 * statistics.median(times), "bytes": written}
    results["peak_mb"] = memory_mb("VmHWM") - before
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--families", default="square,landscape,portrait,hero,facebook-og")
    args = parser.parse_args()
    names = args.families.split(",")
    sets = masters(names)
    context = multiprocessing.get_context("spawn")
    results = {}
    for implementation in ("pillow", "ours", "ours-effort4"):
        with context.Pool(1) as pool:
            results[implementation] = pool.apply(run, (implementation, sets, args.runs))
    from streams import families

    table = families.load()
    print(f"WebP quality {QUALITY}, median of {args.runs} runs, {multiprocessing.cpu_count()} cores")
    print(
        f"{'family':<12} {'files':>5} {'pillow ms':>10} {'ours ms':>8} {'ratio':>6} {'ours e4 ms':>10} "
        f"{'pillow KB':>10} {'ours KB':>8}"
    )
    totals = dict.fromkeys(("pillow", "ours", "ours-effort4"), 0.0)
    for name in names:
        row = {k: results[k][name] for k in totals}
        for k in totals:
            totals[k] += row[k]["ms"]
        files = 1 + len(table.get(name).derivatives)
        print(
            f"{name:<12} {files:>5} {row['pillow']['ms']:>10.1f} {row['ours']['ms']:>8.1f} "
            f"{row['pillow']['ms'] / row['ours']['ms']:>5.2f}x {row['ours-effort4']['ms']:>10.1f} "
            f"{row['pillow']['bytes'] / 1024:>10.0f} {row['ours']['bytes'] / 1024:>8.0f}"
        )
    print(
        f"{'all sets':<12} {'':>5} {totals['pillow']:>10.1f} {totals['ours']:>8.1f} "
        f"{totals['pillow'] / totals['ours']:>5.2f}x {totals['ours-effort4']:>10.1f}"
    )
    print("peak memory above the masters (MB): " + ", ".join(f"{k} {v['peak_mb']:.0f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
