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
    "compile": "torch.compile the UNet (max-autotune; minutes on first call)",
    "cuda_graphs": "with compile: replay the UNet as CUDA graphs (fixed shapes per bucket and batch)",
}


class UnknownLever(ValueError):
    pass


def parse(text: str) -> tuple[str, ...]:
    levers = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [lever for lever in levers if lever not in LEVERS]
    if unknown:
        raise UnknownLever(f"SPEED_LEVERS: unknown {unknown}; known: {sorted(LEVERS)}")
    if {"bf16", "fp16"} <= set(levers):
        raise UnknownLever("SPEED_LEVERS: choose one of bf16 and fp16")
    if "cuda_graphs" in levers and "compile" not in levers:
        raise UnknownLever("SPEED_LEVERS: cuda_graphs needs compile")
    return levers


def apply(pipeline: Any, levers: tuple[str, ...]) -> Any:
    """Pull the levers on a loaded pipeline, in the order that works (precision before fusing and
    compiling). Returns the pipeline."""
    import torch

    # 1. Precision
    if "bf16" in levers:
        pipeline.to(dtype=torch.bfloat16)
    elif "fp16" in levers:
        pipeline.to(dtype=torch.float16)
    # 2. Fewer, larger matmuls
    if "fused_qkv" in levers:
        pipeline.fuse_qkv_projections()
    # 3. Memory format
    if "channels_last" in levers:
        pipeline.unet.to(memory_format=torch.channels_last)
        pipeline.vae.to(memory_format=torch.channels_last)
    # 4. Large masters
    if "vae_tiling" in levers:
        pipeline.vae.enable_tiling()
    # 5. Compilation, last: it captures everything above
    if "compile" in levers:
        mode = "max-autotune" if "cuda_graphs" in levers else "max-autotune-no-cudagraphs"
        pipeline.unet = torch.compile(pipeline.unet, mode=mode, fullgraph=True)
    return pipeline
