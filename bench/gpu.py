"""The one-shot GPU proof: plain diffusers fp16 against imagegen's speed levers, in one process, on
full-size SDXL with random weights (the real cost; nothing is downloaded), within a time budget.

    bash bench/gpu.sh                          # on the GPU machine: wheels from .whl/, then this
    .venv/bin/python bench/gpu.py --smoke      # anywhere: the tiny model on the CPU, in seconds

It measures, in this order (each result is written as it comes, so a run cut short keeps its table):
1. plain diffusers fp16, and the same seed twice: identical pixels or not;
2. each lever alone (bf16, channels_last, fused_qkv, bf16+fp8) at one batch and step count;
3. plain and the best set at batch 1, 4 and 8, at 20 and 30 steps, and the best set's determinism;
4. the hi-res pass's cost: img2img at strength 0.3 on the hero family's master size (2560x1096);
5. a live preview's cost: the latents of a batch of 4 at 1024x1024 to four 256 px WebPs;
6. compile alone, if the budget leaves time for its compilation.
Per configuration: warm-up (compile, autotuning) apart from the steady state, images per second,
peak GPU memory and the share of the GPU's bf16 peak that the SDXL FLOP count implies. Writes
gpu.json and gpu.md to --out."""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# FLOP counted with torch's counter on SDXL base (../shared/SDXL.md): per guided step at 1024x1024,
# the VAE decode, and both text encoders for prompt and negative prompt.
STEP_TFLOP, DECODE_TFLOP, TEXT_TFLOP = 13.52, 10.47, 0.22
BF16_PEAK_TFLOPS = 989.0  # H100 SXM / H200, dense, as NVIDIA states it
PROMPT, NEGATIVE = "a lighthouse on a cliff at dusk, dramatic sky", "blurry, text"
BEST = "bf16,fused_qkv,channels_last,fp8,compile"


@dataclass
class Run:
    config: str  # plain diffusers ("diffusers fp16"; on a CPU, fp32) or the levers
    batch: int
    steps: int
    warmup_s: float | None = None  # the first call: compilation, autotuning, allocator
    seconds_per_call: float | None = None  # steady state, mean of the timed calls
    images_per_s: float | None = None
    peak_gb: float | None = None
    share_of_bf16_peak: float | None = None
    identical_pixels: bool | None = None  # the same seed twice
    error: str | None = None


@dataclass
class Proof:
    device: str
    model: str
    size: int
    torch: str
    diffusers: str
    budget_s: float
    started: float = field(default_factory=time.time)
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu.json").write_text(json.dumps(asdict(self), indent=1))
        (out / "gpu.md").write_text(self.markdown())

    def markdown(self) -> str:
        head = (
            f"{self.model} {self.size}x{self.size} on {self.device} (torch {self.torch}, diffusers "
            f"{self.diffusers}); images/s on one device, steady state after one warm-up call\n\n"
            "| configuration | batch | steps | images/s | vs diffusers | warm-up s | peak GB | of bf16 peak "
            "| same seed, same pixels |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
        )
        plain = {(r.batch, r.steps): r.images_per_s for r in self.runs if r.config.startswith("diffusers")}
        rows = []
        for r in self.runs:
            if r.error:
                rows.append(f"| {r.config} | {r.batch} | {r.steps} | {r.error} | | | | | |")
                continue
            base = plain.get((r.batch, r.steps))
            ratio = f"{r.images_per_s / base:.2f}x" if base and r.images_per_s else ""
            rows.append(
                f"| {r.config} | {r.batch} | {r.steps} | {_f(r.images_per_s, 2)} | {ratio} | {_f(r.warmup_s, 1)} "
                f"| {_f(r.peak_gb, 1)} | {_f(r.share_of_bf16_peak, 1, '%')} | {_yes(r.identical_pixels)} |"
            )
        notes = "".join(f"\n- {n}" for n in self.notes)
        return head + "\n".join(rows) + "\n" + (f"\nNotes:{notes}\n" if notes else "")


def _f(value: float | None, digits: int, unit: str = "") -> str:
    if value is None:
        return ""
    return f"{value * 100:.{digits}f}{unit}" if unit == "%" else f"{value:.{digits}f}"


def _yes(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "NO")


def _pipeline(model: str, device: str) -> Any:
    if model == "sdxl":
        from inference import sdxl

        torch.manual_seed(0)
        return sdxl.random_pipeline(device=device, dtype=torch.float16)
    from diffusers import StableDiffusionXLPipeline

    from imagegen.config import Settings
    from inference.tiny import tiny_path

    path = tiny_path(Settings().model_cache_dir)
    return StableDiffusionXLPipeline.from_pretrained(path, dtype=torch.float32, local_files_only=True).to(device)


def _call(pipe: Any, batch: int, size: int, steps: int, seed: int = 0) -> np.ndarray:
    out = pipe(
        prompt=[PROMPT] * batch,
        negative_prompt=[NEGATIVE] * batch,
        width=size,
        height=size,
        num_inference_steps=steps,
        guidance_scale=5.0,
        generator=[torch.Generator("cpu").manual_seed(seed + i) for i in range(batch)],
        output_type="np",
    )
    return np.asarray(out.images)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(run: Run, call: Callable[[], Any], runs: int, device: str) -> tuple[Any, Any]:
    """A warm-up call, then `runs` timed calls, into `run`: their time, images/s, peak GPU memory.
    Returns the first call's and the last call's results."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    first = call()
    _sync(device)
    run.warmup_s = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(runs):
        last = call()
    _sync(device)
    run.seconds_per_call = (time.perf_counter() - began) / runs
    run.images_per_s = run.batch / run.seconds_per_call
    if device == "cuda":
        run.peak_gb = torch.cuda.max_memory_allocated() / 1e9
    return first, last


def measure(pipe: Any, config: str, batch: int, steps: int, size: int, runs: int, device: str, same: bool) -> Run:
    """One configuration at one batch and step count: a warm-up call, then `runs` timed calls."""
    run = Run(config, batch, steps)
    first, last = _timed(run, lambda: _call(pipe, batch, size, steps), runs, device)
    if device == "cuda" and size == 1024 and run.images_per_s:
        tflop = STEP_TFLOP * steps + DECODE_TFLOP + TEXT_TFLOP
        run.share_of_bf16_peak = tflop * run.images_per_s / BF16_PEAK_TFLOPS
    if same:
        run.identical_pixels = bool(np.array_equal(first, last))
    return run


def measure_refine(
    pipe: Any, config: str, batch: int, steps: int, size: tuple[int, int], runs: int, device: str
) -> Run:
    """The hi-res pass alone, as a worker runs it (inference/generation.py): SDXL img2img on the same
    components at strength 0.3 and the master's size, on an upscaled drawing."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    refiner = StableDiffusionXLImg2ImgPipeline.from_pipe(pipe)
    refiner.set_progress_bar_config(disable=True)
    width, height = size
    drawn = torch.rand(batch, 3, height // 2, width // 2, generator=torch.Generator("cpu").manual_seed(0))
    image = torch.nn.functional.interpolate(drawn, size=(height, width), mode="bicubic").clamp(0, 1)

    def call() -> None:
        refiner(
            prompt=[PROMPT] * batch,
            negative_prompt=[NEGATIVE] * batch,
            image=image,
            strength=0.3,
            num_inference_steps=steps,
            guidance_scale=5.0,
            generator=[torch.Generator("cpu").manual_seed(i) for i in range(batch)],
            output_type="np",
        )

    run = Run(config, batch, steps)
    _timed(run, call, runs, device)
    return run


def _levers(text: str, device: str) -> tuple[str, ...]:
    from inference import speed

    levers = speed.parse(text)
    speed.check(levers, device)  # fp8 on a CPU: refused here, with the message a worker gives
    return levers


def main(argv: list[str] | None = None) -> Proof:
    import diffusers

    from inference import speed

    diffusers.utils.logging.disable_progress_bar()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="the tiny model on the CPU, small and quick")
    parser.add_argument("--out", type=Path, default=Path("bench/out"), help="where gpu.json and gpu.md go")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting measurements after this")
    parser.add_argument("--runs", type=int, default=None, help="timed calls per measurement (default 3; smoke 1)")
    parser.add_argument(
        "--compile-mode",
        default="default",
        help="torch.compile's mode for the compile lever (default: default, which compiles in about a minute; "
        "a worker uses max-autotune-no-cudagraphs, which autotunes for minutes)",
    )
    parser.add_argument("--best", default=None, help=f"the best set (default {BEST}; smoke: fused_qkv,channels_last)")
    args = parser.parse_args(argv)
    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not args.smoke:
        parser.error("no CUDA device here: run with --smoke, or on the GPU machine")
    model, size = ("tiny", 128) if args.smoke else ("sdxl", 1024)
    runs = args.runs or (1 if args.smoke else 3)
    batches, step_counts = ((1, 2), (2, 3)) if args.smoke else ((1, 4, 8), (20, 30))
    alone_batch, alone_steps = (2, 2) if args.smoke else (4, 20)
    best = args.best or ("fused_qkv,channels_last" if args.smoke else BEST)
    levers_alone = ["bf16", "channels_last", "fused_qkv", "bf16,fp8", "compile"]
    if args.smoke:
        levers_alone = ["channels_last", "fused_qkv", "bf16,fp8"]  # fp8: refused on the CPU, recorded as such
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    proof = Proof(name, model, size, torch.__version__, diffusers.__version__, args.budget_s)
    deadline = time.monotonic() + args.budget_s

    def record(run: Run) -> None:
        proof.runs.append(run)
        proof.write(args.out)
        print(
            f"{run.config:<44} batch {run.batch} steps {run.steps}: {run.error or f'{run.images_per_s:.2f} images/s'}"
        )

    def left() -> bool:
        if time.monotonic() < deadline:
            return True
        proof.notes.append(f"stopped starting measurements at the {args.budget_s:.0f} s budget")
        return False

    began = time.monotonic()
    plain = _pipeline(model, device)
    plain.set_progress_bar_config(disable=True)
    proof.notes.append(f"compile lever: torch.compile mode {args.compile_mode!r}, fullgraph")
    proof.notes.append(f"pipeline built in {time.monotonic() - began:.1f} s (random weights on the device)")
    # 1. The baseline, and whether the same seed gives the same pixels
    baseline = "diffusers fp16" if device == "cuda" else "diffusers fp32"
    record(measure(plain, baseline, alone_batch, alone_steps, size, runs, device, same=True))

    def alone(levers: list[str]) -> None:
        """Each lever alone, on a copy of the baseline."""
        for text in levers:
            if not left():
                break
            try:
                ours = speed.apply(copy.deepcopy(plain), _levers(text, device), args.compile_mode)
                record(measure(ours, text, alone_batch, alone_steps, size, runs, device, same=False))
                del ours
            except Exception as exc:  # a lever that fails here is reported, and the proof goes on
                record(Run(text, alone_batch, alone_steps, error=f"{type(exc).__name__}: {exc}"[:300]))
            if device == "cuda":
                torch.cuda.empty_cache()

    # 2. Each lever alone but compile, whose minutes come last
    alone([lever for lever in levers_alone if lever != "compile"])
    # 3. Plain and the best set at every batch and step count
    try:
        fastest = speed.apply(copy.deepcopy(plain), _levers(best, device), args.compile_mode)
    except Exception as exc:
        fastest = None
        proof.notes.append(f"best set {best} not applied: {type(exc).__name__}: {exc}"[:300])
    for steps in step_counts:
        for batch in batches:
            for config, pipe in ((baseline, plain), (best, fastest)):
                if pipe is None or not left():
                    continue
                if (config, batch, steps) == (baseline, alone_batch, alone_steps):
                    continue  # measured first
                try:
                    same = config == best and batch == batches[0]
                    record(measure(pipe, config, batch, steps, size, runs, device, same=same))
                except Exception as exc:
                    record(Run(config, batch, steps, error=f"{type(exc).__name__}: {exc}"[:300]))
    # 4. The hi-res pass's cost, on the fastest pipeline there is
    hero = (320, 136) if args.smoke else (2560, 1096)
    if left():
        label = f"hi-res pass 0.3 at {hero[0]}x{hero[1]} ({best if fastest is not None else baseline})"
        try:
            refine_steps = 4 if args.smoke else 20  # int(steps x 0.3) must leave a step to run
            record(measure_refine(fastest or plain, label, 1, refine_steps, hero, runs, device))
        except Exception as exc:
            record(Run(label, 1, alone_steps, error=f"{type(exc).__name__}: {exc}"[:300]))
    # 5. A live preview's cost (inference/preview.py), per batch of 4, from latents on the device
    try:
        from inference import preview

        latents = torch.randn(4, 4, size // 8, size // 8, device=device)
        preview.previews(latents)
        timed = time.perf_counter()
        for _ in range(10):
            preview.previews(latents)
        proof.notes.append(f"a preview of a batch of 4: {(time.perf_counter() - timed) * 100:.1f} ms (mean of 10)")
    except Exception as exc:
        proof.notes.append(f"previews not timed: {type(exc).__name__}: {exc}"[:300])
    # 6. Compile alone, with what time is left
    alone([lever for lever in levers_alone if lever == "compile"])
    proof.notes.append(f"whole proof {time.monotonic() - began:.0f} s")
    proof.write(args.out)
    print(proof.markdown())
    return proof


if __name__ == "__main__":
    main()
