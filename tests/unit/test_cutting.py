"""Cutting masters into derivatives: exact sizes, real crop boxes, the detailed part kept."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

from inference.cutting import Cut, cut, encode_webp, read_metadata
from streams import families
from streams.families import Derivative, Family

QUALITY = 80


def image(pixels: np.ndarray) -> pyvips.Image:
    return pyvips.Image.new_from_array(np.ascontiguousarray(pixels)).copy(interpretation="srgb").copy_memory()


def textured(width: int, height: int, seed: int = 0) -> pyvips.Image:
    # smooth gradients plus grain: every region is distinct, so a crop box can be checked by eye
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1)
    grain = rng.integers(-20, 21, (height, width, 3))
    return image(np.clip(base + grain, 0, 255).astype(np.uint8))


def flat_with_patch(width: int, height: int, patch: tuple[int, int, int, int]) -> pyvips.Image:
    left, top, w, h = patch
    pixels = np.full((height, width, 3), 120, np.uint8)
    pixels[top : top + h, left : left + w] = np.random.default_rng(1).integers(0, 256, (h, w, 3))
    return image(pixels)


def decoded(c: Cut) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(c.data, "")


@pytest.mark.parametrize("family", families.load(), ids=lambda f: f.name)
def test_every_derivative_has_its_exact_size_and_a_box_of_its_shape_inside_the_master(family: Family) -> None:
    master = textured(family.width, family.height)
    cuts = cut(master, family.derivatives, QUALITY)

    assert [c.name for c in cuts] == [d.name for d in family.derivatives]
    for c, d in zip(cuts, family.derivatives, strict=True):
        webp = decoded(c)
        assert (webp.get("vips-loader"), webp.width, webp.height) == ("webpload_buffer", d.width, d.height)
        assert (c.width, c.height) == (d.width, d.height)
        left, top, width, height = c.crop
        assert left >= 0 and top >= 0 and left + width <= master.width and top + height <= master.height
        # the target's aspect ratio, within a pixel of rounding
        assert abs(width - height * d.width / d.height) <= 1 or abs(height - width * d.height / d.width) <= 1
        # the box spans the master along the axis that was not cut
        assert width == master.width or height == master.height


def test_a_derivative_of_the_master_size_is_the_whole_master() -> None:
    master = textured(320, 180)
    [whole] = cut(master, [Derivative("same", 320, 180)], QUALITY)
    assert whole.crop == (0, 0, 320, 180)
    assert (decoded(whole).width, decoded(whole).height) == (320, 180)


@pytest.mark.parametrize("side", ["left", "right"])
def test_the_detailed_part_of_a_flat_landscape_is_kept_in_a_square(side: str) -> None:
    patch = (60, 200, 150, 150) if side == "left" else (1030, 200, 150, 150)
    master = flat_with_patch(1280, 720, patch)

    [square] = cut(master, [Derivative("square", 400, 400)], QUALITY)

    left, top, width, height = square.crop
    assert (top, height) == (0, 720)
    assert left <= patch[0] and patch[0] + patch[2] <= left + width
    assert width == pytest.approx(720, abs=1)


def test_the_detailed_part_of_a_flat_portrait_is_kept_in_a_banner() -> None:
    patch = (100, 900, 200, 120)  # near the bottom
    master = flat_with_patch(540, 1080, patch)

    [banner] = cut(master, [Derivative("banner", 1080, 540)], QUALITY)  # upscaled x2

    left, top, width, height = banner.crop
    assert (left, width) == (0, 540)
    assert top <= patch[1] and patch[1] + patch[3] <= top + height


def test_the_crop_box_is_where_the_derivative_was_really_cut() -> None:
    master = textured(1200, 600, seed=3)
    target = Derivative("square", 300, 300)
    [c] = cut(master, [target], 95)

    def error(box: tuple[int, int, int, int]) -> float:
        region = master.crop(*box).resize(target.width / box[2], vscale=target.height / box[3], kernel="lanczos3")
        region = region.crop(0, 0, target.width, target.height)
        return float((region.cast("float") - decoded(c).cast("float")).abs().avg())

    left, top, width, height = c.crop
    assert (top, height) == (0, 600) and 0 < left < 600  # a window that could have been elsewhere
    # the reported box matches the derivative better than any box a few pixels aside
    shifts = [dx for dx in (-30, -6, -4, -2, 2, 4, 6, 30) if 0 <= left + dx <= 1200 - width]
    assert all(error(c.crop) < error((left + dx, top, width, height)) for dx in shifts)


def test_the_webp_carries_its_metadata_as_xmp() -> None:
    metadata = {"prompt": 'a "quoted" <prompt> & more', "seed": "42", "model": "tiny"}
    data = encode_webp(textured(64, 48), QUALITY, metadata)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert read_metadata(data) == metadata
    assert read_metadata(encode_webp(textured(64, 48), QUALITY)) == {}

    with pytest.raises(ValueError, match="'not a name'"):
        encode_webp(textured(64, 48), QUALITY, {"not a name": "x"})
