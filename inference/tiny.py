"""A real SDXL pipeline with tiny random weights, built offline.

It is the `tiny` model: the same classes, configs and call path as full SDXL (two CLIP text
encoders, a text_time UNet, a VAE, Euler), small enough to draw in a fraction of a second on a CPU.
It draws noise-like pictures, but deterministically, which is what tests and machines without
weights need. The tokenizers are built from the real CLIP BPE vocabulary that ships in the
`openai-clip` wheel, so prompts tokenize to the same ids as with real SDXL.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.cache import build_once
from inference.tokenizer import EOS, MAX_LENGTH, clip_tokenizer

if TYPE_CHECKING:
    from diffusers import StableDiffusionXLPipeline

TINY_NAME = "tiny-sdxl-v1"  # bump the suffix when the recipe below changes
SEED = 0
HIDDEN = 32


def tiny_path(cache_dir: Path) -> Path:
    """The tiny pipeline's folder in the model cache, built on first use."""
    return build_tiny(cache_dir / TINY_NAME)


def build_tiny(path: Path) -> Path:
    """Build the tiny SDXL pipeline into `path` (a diffusers folder) unless it is there already.
    The build is deterministic and atomic (inference/cache.py)."""
    return build_once(path, lambda staging: _pipeline(staging).save_pretrained(staging, safe_serialization=True))


def _pipeline(workdir: Path) -> StableDiffusionXLPipeline:
    # torch and diffusers load with the first build, not with the module (the registry names TINY_NAME)
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    # The recipe of diffusers' SDXL fast tests, with CLIP's real vocabulary size and special ids.
    # Each component is seeded on its own so that changing one leaves the others' weights alone.
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + HIDDEN,  # six time ids + pooled text
        cross_attention_dim=2 * HIDDEN,  # both encoders' hidden states, concatenated
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    torch.manual_seed(SEED)
    # Four blocks, not the tests' two: latents are 1/8 of the picture, as with SDXL's VAE, which
    # makes the tiny model ~5x faster at a given picture size.
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        sample_size=128,
    )
    torch.manual_seed(SEED)
    text_encoder = CLIPTextModel(_text_config())
    torch.manual_seed(SEED)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config())
    tokenizer = clip_tokenizer(workdir / "clip-bpe", pad_token=EOS)
    # SDXL's second tokenizer pads with "!" (id 0), as OpenCLIP does
    tokenizer_2 = clip_tokenizer(workdir / "clip-bpe", pad_token="!")
    shutil.rmtree(workdir / "clip-bpe")
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    )


def _text_config() -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=MAX_LENGTH,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        hidden_size=HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=5,
        layer_norm_eps=1e-05,
        hidden_act="gelu",
        projection_dim=HIDDEN,
    )
