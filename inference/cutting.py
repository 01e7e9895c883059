"""Cutting a master into its derivatives, and WebP encoding.

Each derivative is the master scaled to cover the target (one scale, lanczos3), then cut to the
target's exact size along the free axis where libvips' `entropy` smartcrop finds the most detail.
libvips does not report where it cut (its `attention_x/y` outputs stay 0 for `entropy`), so the
window is located in the scaled image by its pixels; the crop box recorded is the real one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

import numpy as np
import pyvips

from streams.families import Derivative

XMP_NAMESPACE = "urn:imagegen:xmp:1.0/"
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


@dataclass(frozen=True)
class Cut:
    name: str
    width: int
    height: int
    data: bytes
    crop: tuple[int, int, int, int]  # (left, top, width, height) of the master, in master pixels


def cut(
    master: pyvips.Image,
    derivatives: Iterable[Derivative],
    quality: int,
    metadata: dict[str, str] | None = None,
) -> list[Cut]:
    """Cut `master` into each derivative at its exact size, encoded as WebP."""
    return [_cut(master, d, quality, metadata) for d in derivatives]


def _cut(master: pyvips.Image, target: Derivative, quality: int, metadata: dict[str, str] | None) -> Cut:
    width, height = target.width, target.height
    if (width, height) == (master.width, master.height):
        window, box = master, (0, 0, master.width, master.height)
    else:
        scaled = cover(master, width, height)
        window = scaled.smartcrop(width, height, interesting="entropy")
        left, top = _window_offset(scaled, window)
        box = _master_box(master, scaled, left, top, width, height)
    return Cut(target.name, width, height, encode_webp(window, quality, metadata), box)


def cover(image: pyvips.Image, width: int, height: int) -> pyvips.Image:
    """`image` scaled by one factor (lanczos3) to the smallest size covering width x height.

    The covering side is exactly the target's; the other keeps the aspect ratio, rounded.
    """
    scale = max(width / image.width, height / image.height)
    out_width = width if width / image.width == scale else max(width, round(image.width * scale))
    out_height = height if height / image.height == scale else max(height, round(image.height * scale))
    # in memory: smartcrop reads it many times, and so does _window_offset
    return resize_to(image, out_width, out_height).copy_memory()


def resize_to(image: pyvips.Image, width: int, height: int) -> pyvips.Image:
    """`image` resized with lanczos3 to exactly width x height (x and y scales may differ)."""
    if (image.width, image.height) == (width, height):
        return image
    resized = image.resize(width / image.width, vscale=height / image.height, kernel="lanczos3")
    # libvips rounds the output size; a float error could leave it a pixel off
    if resized.width > width or resized.height > height:
        resized = resized.crop(0, 0, min(width, resized.width), min(height, resized.height))
    if resized.width < width or resized.height < height:
        resized = resized.embed(0, 0, width, height, extend="copy")
    return resized


def _window_offset(scaled: pyvips.Image, window: pyvips.Image) -> tuple[int, int]:
    """Where `window`, cut out of `scaled` along one free axis, lies in it."""
    free_x, free_y = scaled.width - window.width, scaled.height - window.height
    if free_x and free_y:
        raise ValueError(
            f"one free axis expected, got {scaled.width}x{scaled.height} -> {window.width}x{window.height}"
        )
    if not (free_x or free_y):
        return 0, 0
    whole, part = np.atleast_3d(scaled.numpy()), np.atleast_3d(window.numpy())
    # cheap signatures first (column sums when x is free, row sums when y is), then whole pixels
    along = 1 if free_x else 0
    whole_sums = whole.sum(axis=(1 - along, 2), dtype=np.int64)
    part_sums = part.sum(axis=(1 - along, 2), dtype=np.int64)
    runs = np.lib.stride_tricks.sliding_window_view(whole_sums, part_sums.size)
    for shift in np.flatnonzero((runs == part_sums).all(axis=1)):
        left, top = (int(shift), 0) if free_x else (0, int(shift))
        if np.array_equal(whole[top : top + window.height, left : left + window.width], part):
            # where content repeats (a flat stretch), the first match shows the very same pixels
            return left, top
    raise RuntimeError("the smartcrop window is not a region of its input")


def _master_box(
    master: pyvips.Image, scaled: pyvips.Image, left: int, top: int, width: int, height: int
) -> tuple[int, int, int, int]:
    sx, sy = scaled.width / master.width, scaled.height / master.height
    x0, x1 = round(left / sx), min(master.width, round((left + width) / sx))
    y0, y1 = round(top / sy), min(master.height, round((top + height) / sy))
    return x0, y0, x1 - x0, y1 - y0


def encode_webp(image: pyvips.Image, quality: int, metadata: dict[str, str] | None = None) -> bytes:
    """`image` as WebP at `quality` (1..100), with `metadata` embedded as XMP if given."""
    if not metadata:
        return image.webpsave_buffer(Q=quality, keep="none")
    image = image.copy()
    image.set_type(pyvips.GValue.blob_type, "xmp-data", xmp_packet(metadata))
    return image.webpsave_buffer(Q=quality, keep="xmp")


def xmp_packet(metadata: dict[str, str]) -> bytes:
    """An XMP packet holding `metadata` as `imagegen:` properties (keys must be XML names)."""
    for key in metadata:
        if not _XML_NAME.fullmatch(key):
            raise ValueError(f"metadata key {key!r} is not an XML name")
    attributes = "".join(f"\n   imagegen:{key}={quoteattr(str(value))}" for key, value in metadata.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{_RDF}">\n'
        f'  <rdf:Description rdf:about="" xmlns:imagegen="{XMP_NAMESPACE}"{attributes}/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def read_metadata(data: bytes) -> dict[str, str]:
    """The `imagegen:` XMP properties of an encoded image (empty when it has none)."""
    image = pyvips.Image.new_from_buffer(data, "")
    if not image.get_typeof("xmp-data"):
        return {}
    root = ElementTree.fromstring(image.get("xmp-data").decode().strip("\x00"))
    prefix = f"{{{XMP_NAMESPACE}}}"
    return {
        key.removeprefix(prefix): value
        for element in root.iter(f"{{{_RDF}}}Description")
        for key, value in element.attrib.items()
        if key.startswith(prefix)
    }
