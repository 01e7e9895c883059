"""GPU speed levers, as configuration (SPEED_LEVERS), each one a documented diffusers or torch call.
Levers change floating-point rounding: events record the model's weights, not the levers, so compare
pixels only between workers configured alike."""

from __future__ import annotations

from typing import Any

LEVERS = {
    "bf16": "weights and activations in bfloat16 (the VAE too: it does not overflow in bf16)",
    "fp16": "weights and activations in float16 (SDXL's VAE upcasts itself to fp32 to avoid overflow)",
    "channels_last": "UNet and VAE in channels-last memory format (faster convolutions on tensor cores)",
    "fused_qkv": "one matmul for attention's query, key and value projections",
    "vae_tiling": "decode large masters tile by tile (less memory, slightly slower)",
    "fp8": "with bf16: the UNet's linear layers in float8, scaled per row (torchao; GPUs with fp8 tensor cores)",
    "compile": "torch.compile the UNet (max-autotune; minutes on first call)",
    "cuda_graphs": "with compile: replay the UNet as CUDA graphs (fixed shapes per bucket and batch)",
}


FP8_CAPABILITY = (8, 9)  # Ada and Hopper: the first with float8 tensor cores


class UnknownLever(ValueError):
    pass


class LeverRefused(UnknownLever):
    """A lever this machine cannot pull: refused when the worker starts, not at its first job."""


def parse(text: str) -> tuple[str, ...]:
    levers = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [lever for lever in levers if lever not in LEVERS]
    if unknown:
        raise UnknownLever(f"SPEED_LEVERS: unknown {unknown}; known: {sorted(LEVERS)}")
    if {"bf16", "fp16"} <= set(levers):
        raise UnknownLever("SPEED_LEVERS: choose one of bf16 and fp16")
    if "cuda_graphs" in levers and "compile" not in levers:
        raise UnknownLever("SPEED_LEVERS: cuda_graphs needs compile")
    if "fp8" in levers and "bf16" not in levers:
        raise UnknownLever("SPEED_LEVERS: fp8 needs bf16 (its row-scaled matrix products write bfloat16)")
    return levers


def check(levers: tuple[str, ...], device: str) -> None:
    """Refuse, naming it, a lever `device` cannot pull."""
    if "fp8" not in levers:
        return
    capability = None
    if device.startswith("cuda"):
        import torch

        capability = torch.cuda.get_device_capability(device)
    if capability is None or capability < FP8_CAPABILITY:
        where = device if capability is None else f"{device} (compute capability {capability[0]}.{capability[1]})"
        raise LeverRefused(
            "SPEED_LEVERS: fp8 needs an NVIDIA GPU with float8 tensor cores (compute capability 8.9 or "
            f"later: Ada, Hopper); this worker draws on {where}. Leave fp8 out here."
        )


RECOMPILE_LIMIT = 64  # compiled shapes per function: the buckets a worker serves times its batch sizes


def apply(pipeline: Any, levers: tuple[str, ...], compile_mode: str | None = None, backend: Any = "inductor") -> Any:
    """Pull the levers on a loaded pipeline, in the order that works (precision before fusing and
    compiling). `compile_mode`: torch.compile's, instead of max-autotune (the benchmark's choice, where
    minutes of autotuning do not fit); `backend`: torch.compile's (a test's may count compilations).
    Returns the pipeline."""
    import torch

    # 1. Precision
    if "bf16" in levers:
        pipeline.to(dtype=torch.bfloat16)
    elif "fp16" in levers:
        pipeline.to(dtype=torch.float16)
    # 2. Fewer, larger matmuls
    if "fused_qkv" in levers:
        pipeline.fuse_qkv_projections()
    # 3. Float8 matmuls: activations scaled per row as they come, weights once (torchao)
    if "fp8" in levers:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

        quantize_(pipeline.unet, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
    # 4. Memory format
    if "channels_last" in levers:
        pipeline.unet.to(memory_format=torch.channels_last)
        pipeline.vae.to(memory_format=torch.channels_last)
    # 5. Large masters
    if "vae_tiling" in levers:
        pipeline.vae.enable_tiling()
    # 6. Compilation, last: it captures everything above
    if "compile" in levers:
        mode = compile_mode or ("max-autotune" if "cuda_graphs" in levers else "max-autotune-no-cudagraphs")
        # one static graph per shape served (inference/compiled.py warms each before the first job), and
        # room for all of them: past the limit dynamo would quietly run the UNet uncompiled
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
        options = {"mode": mode} if backend == "inductor" else {}
        pipeline.unet = torch.compile(pipeline.unet, fullgraph=True, dynamic=False, backend=backend, **options)
    return pipeline
