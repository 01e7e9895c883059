"""SDXL base's configs, made offline: the architecture of ../shared/SDXL.md, to the parameter, and
tokenizers with CLIP's real ids (OpenCLIP's padding for the second)."""

from __future__ import annotations

import json
from pathlib import Path

import accelerate
import pytest
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

from inference import sdxl


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sdxl.write_configs(tmp_path_factory.mktemp("sdxl") / sdxl.CONFIG_NAME)


def test_the_folder_is_a_weightless_sdxl_pipeline(configs: Path):
    index = json.loads((configs / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert not [p for p in configs.rglob("*") if p.suffix in (".safetensors", ".bin")]


def test_the_unet_is_sdxl_base_to_the_parameter(configs: Path):
    with accelerate.init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(configs / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(configs / "vae"))
        bigg = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(configs / "text_encoder_2"))
    assert sum(p.numel() for p in unet.parameters()) == 2_567_463_684
    assert vae.config.scaling_factor == 0.13025 and vae.config.force_upcast
    assert bigg.config.hidden_size + 768 == unet.config.cross_attention_dim  # both encoders, concatenated


def test_the_tokenizers_give_clip_ids_and_pad_like_sdxl(configs: Path):
    first = CLIPTokenizer.from_pretrained(configs / "tokenizer")
    second = CLIPTokenizer.from_pretrained(configs / "tokenizer_2")
    ids = [49406, 320, 1125, 539, 320, 2368, 49407]
    assert first("a photo of a cat").input_ids == ids == second("a photo of a cat").input_ids
    assert first.pad_token_id == 49407 and second.pad_token_id == 0
    assert first.model_max_length == second.model_max_length == 77
