"""Write a diffusers SDXL pipeline as one original-format (Stability "ldm") `.safetensors` file.

Single-file checkpoints such as JuggernautXL ship in this layout: `model.diffusion_model.*` for the
UNet, `first_stage_model.*` for the VAE, `conditioner.embedders.0.transformer.*` for CLIP ViT-L and
`conditioner.embedders.1.model.*` for OpenCLIP bigG. Tests build one from the tiny pipeline so that
loading a single file offline runs diffusers' real conversion, with no real checkpoint on disk.
The layout is derived from each model's config, so it holds for tiny and full-size SDXL alike.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionXLPipeline
from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING
from safetensors.torch import save_file

Tensors = dict[str, torch.Tensor]

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3"}
RESNET |= {"time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def write(pipeline: StableDiffusionXLPipeline, path: Path) -> Path:
    tensors = {
        **_prefixed("model.diffusion_model.", unet(pipeline.unet.state_dict(), pipeline.unet.config)),
        **_prefixed("first_stage_model.", vae(pipeline.vae.state_dict())),
        **_prefixed("conditioner.embedders.0.transformer.", pipeline.text_encoder.state_dict()),
        **_prefixed("conditioner.embedders.1.model.", open_clip(pipeline.text_encoder_2.state_dict())),
    }
    save_file({key: value.contiguous() for key, value in tensors.items()}, path)
    return path


def unet(weights: Tensors, config: dict) -> Tensors:
    renames = {
        diffusers: ldm
        for group in ("layers", "addition_embed_type")
        for diffusers, ldm in DIFFUSERS_TO_LDM_MAPPING["unet"][group].items()
    }
    prefixes: dict[str, str] = {}  # diffusers module prefix -> ldm module prefix
    per_block = config["layers_per_block"]
    blocks = len(config["block_out_channels"])
    index = 1  # input_blocks.0 is conv_in
    for block in range(blocks):
        for layer in range(per_block):
            prefixes[f"down_blocks.{block}.resnets.{layer}."] = f"input_blocks.{index}.0."
            prefixes[f"down_blocks.{block}.attentions.{layer}."] = f"input_blocks.{index}.1."
            index += 1
        if block < blocks - 1:
            prefixes[f"down_blocks.{block}.downsamplers.0.conv."] = f"input_blocks.{index}.0.op."
            index += 1
    prefixes |= {"mid_block.resnets.0.": "middle_block.0.", "mid_block.attentions.0.": "middle_block.1."}
    prefixes["mid_block.resnets.1."] = "middle_block.2."
    index = 0
    for block in range(blocks):
        has_attention = any(key.startswith(f"up_blocks.{block}.attentions.") for key in weights)
        for layer in range(per_block + 1):
            prefixes[f"up_blocks.{block}.resnets.{layer}."] = f"output_blocks.{index}.0."
            prefixes[f"up_blocks.{block}.attentions.{layer}."] = f"output_blocks.{index}.1."
            index += 1
        upsampler = f"output_blocks.{index - 1}.{2 if has_attention else 1}.conv."
        prefixes[f"up_blocks.{block}.upsamplers.0.conv."] = upsampler

    converted = {}
    for key, value in weights.items():
        if key in renames:
            converted[renames[key]] = value
            continue
        prefix = next(p for p in prefixes if key.startswith(p))
        rest = key[len(prefix) :]
        if ".resnets." in prefix:
            module, _, parameter = rest.partition(".")
            rest = f"{RESNET[module]}.{parameter}"
        converted[prefixes[prefix] + rest] = value
    return converted


def vae(weights: Tensors) -> Tensors:
    renames = DIFFUSERS_TO_LDM_MAPPING["vae"]
    blocks = 1 + max(int(key.split(".")[2]) for key in weights if key.startswith("decoder.up_blocks."))
    converted = {}
    for key, value in weights.items():
        ldm = renames.get(key)
        if ldm is None:
            ldm = key.replace("conv_shortcut", "nin_shortcut")
            side, group, *rest = ldm.split(".")
            if group == "mid_block":
                kind, number, *rest = rest
                if kind == "attentions":
                    module, parameter = ".".join(rest[:-1]), rest[-1]
                    ldm = f"{side}.mid.attn_1.{VAE_ATTENTION[module]}.{parameter}"
                    if value.ndim == 2:  # ldm's attention projections are 1x1 convolutions
                        value = value[:, :, None, None]
                else:
                    ldm = f"{side}.mid.block_{int(number) + 1}." + ".".join(rest)
            else:  # down_blocks.i / up_blocks.i (numbered from the top in ldm's decoder)
                number, kind, *rest = rest
                stage = int(number) if side == "encoder" else blocks - 1 - int(number)
                name = "down" if side == "encoder" else "up"
                if kind == "resnets":
                    ldm = f"{side}.{name}.{stage}.block." + ".".join(rest)
                else:  # downsamplers.0 / upsamplers.0
                    ldm = f"{side}.{name}.{stage}.{name}sample." + ".".join(rest[1:])
        converted[ldm] = value
    return converted


def open_clip(weights: Tensors) -> Tensors:
    renames = {diffusers: ldm for diffusers, ldm in DIFFUSERS_TO_LDM_MAPPING["openclip"]["layers"].items()}
    layer_renames = DIFFUSERS_TO_LDM_MAPPING["openclip"]["transformer"]
    converted: Tensors = {}
    projections: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in weights.items():
        if key in renames:
            ldm = renames[key]
            converted[ldm] = value.T if ldm == "text_projection" else value
            continue
        if key.endswith("position_ids"):
            continue
        for diffusers, ldm in layer_renames.items():
            key = key.replace(diffusers, ldm)
        for projection in ("q_proj", "k_proj", "v_proj"):
            if f".{projection}." in key:  # OpenCLIP keeps q, k and v in one in_proj tensor
                module, _, parameter = key.partition(f".{projection}.")
                projections.setdefault(f"{module}.in_proj_{parameter}", {})[projection] = value
                break
        else:
            converted["transformer." + key] = value
    for key, parts in projections.items():
        converted["transformer." + key] = torch.cat([parts["q_proj"], parts["k_proj"], parts["v_proj"]])
    return converted


def _prefixed(prefix: str, tensors: Tensors) -> Tensors:
    return {prefix + key: value for key, value in tensors.items()}
