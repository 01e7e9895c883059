"""Inference benchmark: plain diffusers defaults against imagegen's configuration, in one process, on
the same weights. On a GPU: full-size SDXL with random weights (real SDXL cost, inference/sdxl.py) at
1024x1024; on a CPU: the built-in tiny model, so the benchmark can be smoke-tested anywhere.

    .venv/bin/python bench/sdxl_speed.py                  # GPU: SDXL, 30 steps, batches 1 and 4
    .venv/bin/python bench/sdxl_speed.py --model tiny --steps 4 --runs 2
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

# FLOP counted with torch's counter on SDXL base (../shared/SDXL.md): per guided step at 1024x1024,
# the VAE decode, and both text encoders for prompt and negative prompt.
STEP_TFLOP, DECODE_TFLOP, TEXT_TFLOP = 13.52, 10.47, 0.22
BF16_PEAK_TFLOPS = 989.0  # H100 SXM / H200 dense


def pipeline(model: str, device: str):
    if model == "sdxl":
        from inference import sdxl

        torch.manual_seed(0)
        return sdxl.random_pipeline(device=device, dtype=torch.float16 if device == "cuda" else torch.float32)
    from diffusers import StableDiffusionXLPipeline

    from imagegen.config import Settings
    from inference.tiny import tiny_path

    path = tiny_path(Settings().model_cache_dir)
    return StableDiffusionXLPipeline.from_pretrained(path, dtype=torch.float32, local_files_only=True)


def timed(pipe, batch: int, size: int, steps: int, runs: int, device: str) -> float:
    """Seconds per image, after one warm-up call (compilation, autotuning, allocator)."""

    def call() -> None:
        pipe(
            prompt=["a lighthouse on a cliff at dusk"] * batch,
            negative_prompt=["blurry"] * batch,
            width=size,
            height=size,
            num_inference_steps=steps,
            guidance_scale=5.0,
            generator=[torch.Generator("cpu").manual_seed(i) for i in range(batch)],
            output_type="np",
        )

    call()
    if device == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(runs):
        call()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - began) / (runs * batch)


def main(argv: list[str] | None = None) -> None:
    import diffusers

    from inference import speed

    diffusers.utils.logging.disable_progress_bar()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["sdxl", "tiny"], default=None, help="default: sdxl on a GPU, else tiny")
    parser.add_argument("--size", type=int, default=None, help="default: 1024 (sdxl), 128 (tiny)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 4)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--levers", default=None, help="ours; default bf16,channels_last,fused_qkv on a GPU")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = args.model or ("sdxl" if device == "cuda" else "tiny")
    size = args.size or (1024 if model == "sdxl" else 128)
    levers = speed.parse(
        args.levers
        if args.levers is not None
        else ("bf16,channels_last,fused_qkv" if device == "cuda" else "channels_last,fused_qkv")
    )
    batches = args.batch or [1, 4]

    plain = pipeline(model, device).to(device)
    plain.set_progress_bar_config(disable=True)
    ours = speed.apply(copy.deepcopy(plain), levers)
    tflop = STEP_TFLOP * args.steps + DECODE_TFLOP + TEXT_TFLOP if model == "sdxl" else None
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"{model} {size}x{size}, {args.steps} steps, guidance on, {args.runs} timed runs, on {name}")
    print(f"ours: {','.join(levers) or 'no levers'}")
    print(f"{'pipeline':<18}{'batch':>6}{'s/image':>10}{'images/s':>10}{'of bf16 peak':>14}")
    for batch in batches:
        results = {}
        for label, pipe in (("diffusers default", plain), ("imagegen", ours)):
            seconds = timed(pipe, batch, size, args.steps, args.runs, device)
            results[label] = seconds
            share = f"{tflop / seconds / BF16_PEAK_TFLOPS:.0%}" if tflop and device == "cuda" else "-"
            print(f"{label:<18}{batch:>6}{seconds:>10.3f}{1 / seconds:>10.2f}{share:>14}")
        print(f"{'speed-up':<18}{batch:>6}{results['diffusers default'] / results['imagegen']:>10.2f}x")


if __name__ == "__main__":
    main()
