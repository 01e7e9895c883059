"""Previews of a drawing as it forms: SDXL's latents at a denoising step turned into a small picture by
a linear map from the four latent channels to RGB (the approximation ComfyUI and InvokeAI use for
their latent previews), with no decoder and no extra weights. Cheap enough for every few steps: a
matrix product over a 128x128 latent and a small WebP."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

# latent channel -> (R, G, B), and the bias, fitted for SDXL's VAE (the values ComfyUI ships)
SDXL_LATENT_RGB = np.array(
    [
        [0.3651, 0.4232, 0.4341],
        [-0.2533, -0.0042, 0.1068],
        [0.1076, 0.1111, -0.0362],
        [-0.3165, -0.2492, -0.2188],
    ],
    dtype=np.float32,
)
SDXL_LATENT_RGB_BIAS = np.array([0.1084, -0.0175, -0.0011], dtype=np.float32)
SIDE = 256  # the preview's longer side, in pixels
QUALITY = 70


def pictures(latents: Any) -> list[np.ndarray]:
    """Each latent of a batch (4 x h x w, torch or numpy) as an 8-bit RGB picture (h x w x 3)."""
    array = latents.detach().float().cpu().numpy() if hasattr(latents, "detach") else np.asarray(latents, np.float32)
    rgb = np.einsum("bchw,cr->bhwr", array, SDXL_LATENT_RGB) + SDXL_LATENT_RGB_BIAS  # -1..1, roughly
    return list((np.clip((rgb + 1.0) / 2.0, 0.0, 1.0) * 255).round().astype(np.uint8))


def webp(picture: np.ndarray, side: int = SIDE) -> tuple[bytes, int, int]:
    """A picture scaled (bilinear: it is a preview) so its longer side is `side`, as WebP, with its size.
    Pillow, not pyvips: a preview is small, and the GPU proof runs it where only Pillow is."""
    image = Image.fromarray(np.ascontiguousarray(picture), "RGB")
    scale = side / max(image.width, image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "WEBP", quality=QUALITY, method=0)
    return out.getvalue(), image.width, image.height


def previews(latents: Any, side: int = SIDE) -> list[tuple[bytes, int, int]]:
    """A batch's latents as WebP previews (bytes, width, height), one per job."""
    return [webp(picture, side) for picture in pictures(latents)]
