"""SDXL base 1.0's architecture as configuration (../shared/SDXL.md): the configs and tokenizers a
single-file checkpoint needs to load offline, and a full-size pipeline with random weights for
benchmarks (real SDXL cost, nothing downloaded)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from inference.cache import build_once

CONFIG_NAME = "sdxl-base-1.0-configs-v1"

UNET: dict[str, Any] = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
    norm_num_groups=32,
    norm_eps=1e-5,
    act_fn="silu",
    flip_sin_to_cos=True,
    freq_shift=0,
)
VAE: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=1024,
    scaling_factor=0.13025,
    force_upcast=True,  # the original VAE overflows in fp16
)
_TEXT: dict[str, Any] = dict(
    vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, layer_norm_eps=1e-5
)
TEXT_ENCODER: dict[str, Any] = dict(  # CLIP ViT-L/14's text model
    _TEXT,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    hidden_act="quick_gelu",
    projection_dim=768,
    pad_token_id=49407,
)
TEXT_ENCODER_2: dict[str, Any] = dict(  # OpenCLIP ViT-bigG/14's text model, with projection
    _TEXT,
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=20,
    hidden_act="gelu",
    projection_dim=1280,
    pad_token_id=0,
)
SCHEDULER: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    timestep_spacing="leading",
    prediction_type="epsilon",
)


def _components(device: Any = None, dtype: Any = None, empty: bool = False) -> dict[str, Any]:
    import accelerate
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from inference.tokenizer import EOS, clip_tokenizer

    made = accelerate.init_empty_weights() if empty else torch.device(device or "cpu")
    with made:
        modules = dict(
            unet=UNet2DConditionModel(**UNET),
            vae=AutoencoderKL(**VAE),
            text_encoder=CLIPTextModel(CLIPTextConfig(**TEXT_ENCODER)),
            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**TEXT_ENCODER_2)),
        )
    if dtype is not None and not empty:
        modules = {name: module.to(dtype) for name, module in modules.items()}
    with tempfile.TemporaryDirectory() as bpe:
        tokenizer = clip_tokenizer(Path(bpe), pad_token=EOS)
        tokenizer_2 = clip_tokenizer(Path(bpe), pad_token="!")  # OpenCLIP pads with "!"
    return dict(modules, tokenizer=tokenizer, tokenizer_2=tokenizer_2, scheduler=EulerDiscreteScheduler(**SCHEDULER))


def write_configs(path: Path) -> Path:
    """A diffusers folder with SDXL's configs and tokenizers and no weights (for from_single_file)."""
    from diffusers import StableDiffusionXLPipeline

    def write(staging: Path) -> None:
        components = _components(empty=True)
        StableDiffusionXLPipeline(**components).save_config(staging)  # model_index.json
        for name, component in components.items():
            if hasattr(component, "save_config"):
                component.save_config(staging / name)
            else:  # transformers: the config of a model, the files of a tokenizer
                getattr(component, "config", component).save_pretrained(staging / name)

    return build_once(path, write)


def config_path(cache_dir: Path) -> Path:
    """SDXL base's configs and tokenizers in the model cache, made offline on first use."""
    return write_configs(cache_dir / CONFIG_NAME)


def random_pipeline(device: str = "cuda", dtype: Any = None) -> Any:
    """Full-size SDXL with random weights, made on `device` (GPU benchmarks: about 7 GB in fp16)."""
    from diffusers import StableDiffusionXLPipeline

    return StableDiffusionXLPipeline(**_components(device=device, dtype=dtype))
