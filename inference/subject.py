"""Finding what a master is about, once per master: the crops of all its derivatives keep it.

In order: a focal point the request gives; faces (OpenCV's bundled Haar cascade); else the region
libvips' `entropy` smartcrop keeps. A face box is widened to take in hair and chin.
"""

from __future__ import annotations

import threading
from functools import cache

import cv2
import numpy as np
import pyvips

from inference.framing import Box, Subject

DETECT_SIDE = 640  # faces are looked for on a copy this long: enough for a face 1/20 of the picture
MIN_FACE = 0.06  # of the shorter side
KEEP_FACES = 0.25  # faces smaller than this share of the largest one's area are background (or false)
# Haar boxes span brows to mouth: widen to the whole head, more above (hair) than below (chin)
FACE_MARGIN = (0.15, 0.30, 0.15, 0.15)  # left, top, right, bottom, in face widths/heights
ENTROPY_SHARE = 0.4  # the busiest region kept as the subject, as a share of each side
_local = threading.local()  # cv2.CascadeClassifier is not safe to share between threads


@cache
def _cascade_path() -> str:
    return str(cv2.data.haarcascades) + "haarcascade_frontalface_default.xml"


def _cascade() -> cv2.CascadeClassifier:
    if not hasattr(_local, "cascade"):
        _local.cascade = cv2.CascadeClassifier(_cascade_path())
    return _local.cascade


def find(master: pyvips.Image, focal_point: tuple[float, float] | None = None) -> Subject:
    """The subject of `master`, in its pixels. A focal point (x, y in 0..1) wins over detection."""
    if focal_point is not None:
        x, y = focal_point
        return Subject(Box(x * master.width, y * master.height, 0.0, 0.0), "focal-point")
    faces = find_faces(master)
    if faces:
        return Subject(_union(faces), "face", largest=max(faces, key=lambda b: b.width * b.height))
    return Subject(_entropy_box(master), "entropy")


def find_faces(master: pyvips.Image) -> list[Box]:
    """Frontal faces, widened to whole heads and clipped to the master; small ones dropped."""
    scale = min(1.0, DETECT_SIDE / max(master.width, master.height))
    small = master.resize(scale) if scale < 1 else master
    gray = np.ascontiguousarray(small.colourspace("b-w")[0].numpy(), dtype=np.uint8)
    gray = cv2.equalizeHist(gray)
    side = max(24, round(MIN_FACE * min(gray.shape)))
    found = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    if len(found) == 0:
        return []
    largest = max(int(w) * int(h) for _, _, w, h in found)
    boxes = []
    for x, y, w, h in found:
        if w * h < KEEP_FACES * largest:
            continue
        left, top, right, bottom = FACE_MARGIN
        x0, y0 = max(0.0, (x - left * w) / scale), max(0.0, (y - top * h) / scale)
        x1 = min(float(master.width), (x + w + right * w) / scale)
        y1 = min(float(master.height), (y + h + bottom * h) / scale)
        boxes.append(Box(x0, y0, x1 - x0, y1 - y0))
    return boxes


def _union(boxes: list[Box]) -> Box:
    left, top = min(b.left for b in boxes), min(b.top for b in boxes)
    right, bottom = max(b.right for b in boxes), max(b.bottom for b in boxes)
    return Box(left, top, right - left, bottom - top)


def _entropy_box(master: pyvips.Image) -> Box:
    """The region libvips' entropy smartcrop keeps at ENTROPY_SHARE of each side: cut along x,
    then along y, each time locating the kept window in its input (libvips does not say where)."""
    scale = min(1.0, DETECT_SIDE / max(master.width, master.height))
    small = (master.resize(scale) if scale < 1 else master).copy_memory()
    width, height = max(1, round(small.width * ENTROPY_SHARE)), max(1, round(small.height * ENTROPY_SHARE))
    column = small.smartcrop(width, small.height, interesting="entropy").copy_memory()
    left = window_offset(small, column)[0]
    window = column.smartcrop(width, height, interesting="entropy")
    top = window_offset(column, window)[1]
    return Box(left / scale, top / scale, width / scale, height / scale)


def window_offset(whole_image: pyvips.Image, window_image: pyvips.Image) -> tuple[int, int]:
    """Where `window_image`, cut out of `whole_image` along one free axis, lies in it."""
    free_x, free_y = whole_image.width - window_image.width, whole_image.height - window_image.height
    if free_x and free_y:
        raise ValueError(
            f"one free axis expected, got {whole_image.width}x{whole_image.height} -> "
            f"{window_image.width}x{window_image.height}"
        )
    if not (free_x or free_y):
        return 0, 0
    whole, part = np.atleast_3d(whole_image.numpy()), np.atleast_3d(window_image.numpy())
    # cheap signatures first (column sums when x is free, row sums when y is), then whole pixels
    along = 1 if free_x else 0
    whole_sums = whole.sum(axis=(1 - along, 2), dtype=np.int64)
    part_sums = part.sum(axis=(1 - along, 2), dtype=np.int64)
    runs = np.lib.stride_tricks.sliding_window_view(whole_sums, part_sums.size)
    for shift in np.flatnonzero((runs == part_sums).all(axis=1)):
        left, top = (int(shift), 0) if free_x else (0, int(shift))
        if np.array_equal(whole[top : top + window_image.height, left : left + window_image.width], part):
            # where content repeats (a flat stretch), the first match shows the very same pixels
            return left, top
    raise RuntimeError("the smartcrop window is not a region of its input")
