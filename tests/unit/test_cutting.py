"""Cutting masters into derivatives: exact sizes, the subject kept out of the platforms' UI, real
crop boxes, the formats asked for, and metadata every file carries."""

from __future__ import annotations

import io
from xml.etree import ElementTree

import numpy as np
import pytest
import pyvips
from PIL import Image

from inference import subject
from inference.cutting import Cut, Encoding, cut, cut_master, encode, encode_webp, read_metadata
from inference.framing import Box, Subject
from streams import families
from streams.families import Derivative, Family
from tests.pictures import FACES, face_master, to_vips

ENCODING = Encoding(quality={"webp": 80, "avif": 50, "jpeg": 80})
CENTRE = Subject(Box(0, 0, 0, 0), "entropy")  # a subject that constrains nothing
METADATA = {"prompt": 'a "quoted" <prompt> & more', "seed": "42", "model": "tiny", "family": "square"}


def textured(width: int, height: int, seed: int = 0) -> pyvips.Image:
    # smooth gradients plus grain: every region is distinct, so a crop box can be checked by its pixels
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1)
    grain = rng.integers(-20, 21, (height, width, 3))
    return to_vips(np.clip(base + grain, 0, 255).astype(np.uint8))


def decoded(c: Cut) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(c.data, "")


def centre_of(family: Family) -> Subject:
    return Subject(Box(family.width / 2, family.height / 2, 0, 0), "entropy")


@pytest.mark.parametrize("family", families.load(), ids=lambda f: f.name)
def test_every_derivative_has_its_exact_size_and_a_box_of_its_shape_inside_the_master(family: Family) -> None:
    master = textured(family.width, family.height)
    cuts = cut(master, family.derivatives, centre_of(family), ENCODING)

    assert [c.name for c in cuts] == [d.name for d in family.derivatives]
    for c, d in zip(cuts, family.derivatives, strict=True):
        webp = decoded(c)
        assert (webp.get("vips-loader"), webp.width, webp.height) == ("webpload_buffer", d.width, d.height)
        left, top, width, height = c.crop
        assert left >= 0 and top >= 0 and left + width <= master.width and top + height <= master.height
        # the target's aspect ratio, within a pixel of rounding
        assert abs(width - height * d.width / d.height) <= 1 or abs(height - width * d.height / d.width) <= 1
        assert c.clear and c.scale == pytest.approx(d.width / width, abs=1e-3)


@pytest.mark.parametrize("family", families.load(), ids=lambda f: f.name)
def test_a_face_off_centre_stays_whole_in_every_derivative_and_out_of_the_platform_s_ui(family: Family) -> None:
    centre, size = FACES[family.name]
    master, head = face_master(family.width, family.height, centre, size)
    found = subject.find(master)
    assert found.reason == "face"

    for c, d in zip(cut(master, family.derivatives, found, ENCODING), family.derivatives, strict=True):
        left, top, width, height = c.crop
        # the whole head is in the crop ...
        assert left <= head[0] and top <= head[1], d.name
        assert head[0] + head[2] <= left + width and head[1] + head[3] <= top + height, d.name
        # ... and, in the derivative, clear of every zone the platform covers
        x0, x1 = (head[0] - left) / width, (head[0] + head[2] - left) / width
        y0, y1 = (head[1] - top) / height, (head[1] + head[3] - top) / height
        for zone in d.safe_zones:
            assert x1 <= zone.left or x0 >= zone.left + zone.width or y1 <= zone.top or y0 >= zone.top + zone.height, (
                f"{d.name}: the head is under {zone.note}"
            )
        assert c.clear and c.reason == "face"


def test_the_story_zooms_a_face_out_from_under_its_top_band_and_records_the_upscale() -> None:
    portrait = families.load().get("portrait")
    master, _head = face_master(portrait.width, portrait.height, *FACES["portrait"])
    story = portrait.derivative("instagram-story")
    assert story is not None
    [c] = cut(master, [story], subject.find(master), ENCODING)
    assert c.scale > 1 and c.crop[2] < master.width  # a window smaller than the story: upscaled
    # the face is still there to be seen, between the bands, in the picture people get
    [face] = subject.find_faces(decoded(c))
    assert 0.14 * story.height < face.centre[1] < 0.80 * story.height


@pytest.mark.parametrize(("x", "expected_left"), [(0.2, 0), (0.5, 420), (0.75, 840)])
def test_a_focal_point_moves_the_crop_as_asked(x: float, expected_left: int) -> None:
    master = textured(1920, 1080)
    point = subject.find(master, focal_point=(x, 0.5))
    [c] = cut(master, [Derivative("square", 540, 540)], point, ENCODING)
    assert c.crop == (expected_left, 0, 1080, 1080) and c.reason == "focal-point"


def test_the_crop_box_is_where_the_derivative_was_really_cut() -> None:
    master = textured(1200, 600, seed=3)
    target = Derivative("square", 300, 300)
    [c] = cut(master, [target], Subject(Box(500, 200, 100, 100), "face"), Encoding(quality={"webp": 95}))

    def error(box: tuple[int, int, int, int]) -> float:
        region = master.crop(*box).resize(target.width / box[2], vscale=target.height / box[3], kernel="lanczos3")
        region = region.crop(0, 0, target.width, target.height)
        return float((region.cast("float") - decoded(c).cast("float")).abs().avg())

    left, top, width, height = c.crop
    assert (left, top, width, height) == (250, 0, 600, 600)
    # the reported box matches the derivative better than any box a few pixels aside
    assert all(error(c.crop) < error((left + dx, top, width, height)) for dx in (-30, -4, -2, 2, 4, 30))


def test_a_derivative_that_is_the_whole_master_reuses_the_master_s_file() -> None:
    master = textured(320, 180)
    targets = [Derivative("same", 320, 180), Derivative("half", 160, 90), Derivative("same-jpeg", 320, 180, "jpeg")]
    master_webp, found, (same, half, jpeg) = cut_master(master, targets, ENCODING, METADATA, focal_point=(0.5, 0.5))
    assert master_webp == encode_webp(master, ENCODING, METADATA) and read_metadata(master_webp) == METADATA
    assert found.reason == "focal-point"
    assert same.crop == (0, 0, 320, 180) and same.data is master_webp
    assert half.data is not master_webp and half.scale == 0.5
    assert jpeg.crop == (0, 0, 320, 180) and jpeg.data.startswith(b"\xff\xd8")


@pytest.mark.parametrize(
    ("format", "loader", "magic"),
    [
        ("webp", "webpload_buffer", b"RIFF"),
        ("avif", "heifload_buffer", b"\x00\x00\x00"),
        ("jpeg", "jpegload_buffer", b"\xff\xd8"),
    ],
)
def test_each_format_has_its_exact_size_and_carries_the_metadata(format: str, loader: str, magic: bytes) -> None:
    target = Derivative("banner", 600, 300, format=format)  # type: ignore[arg-type]
    [c] = cut(textured(640, 480), [target], CENTRE, ENCODING, METADATA)
    image = decoded(c)
    assert (image.get("vips-loader"), image.width, image.height) == (loader, 600, 300)
    assert c.data.startswith(magic) and c.content_type == f"image/{format}"
    assert read_metadata(c.data) == METADATA
    # common tools read it too: Pillow finds the XMP, with the prompt as the Dublin Core description
    with Image.open(io.BytesIO(c.data)) as opened:
        assert opened.size == (600, 300)
        xmp = opened.info["xmp"]
    root = ElementTree.fromstring(xmp)
    caption = root.find(".//{http://purl.org/dc/elements/1.1/}description//{*}li")
    assert caption is not None and caption.text == METADATA["prompt"]


def test_a_derivative_s_own_quality_is_used() -> None:
    master = textured(640, 480)
    low, high = (
        cut(master, [Derivative("x", 320, 240, format="jpeg", quality=q)], CENTRE, ENCODING)[0] for q in (20, 95)
    )
    assert len(low.data) < len(high.data) / 2


def test_metadata_keys_must_be_xml_names() -> None:
    assert read_metadata(encode(textured(64, 48), "webp", 80)) == {}
    with pytest.raises(ValueError, match="'not a name'"):
        encode(textured(64, 48), "webp", 80, {"not a name": "x"})
