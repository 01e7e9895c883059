"""Where to cut a derivative out of its master: pure geometry, no pixels.

The window has the derivative's aspect ratio and lies inside the master. It must contain the
subject box, and the subject must stay out of the derivative's safe zones (where platform UI covers
the picture). The widest such window wins (the least zoom, so the least upscaling); among windows of
that width, the one whose centre is nearest the subject's centre. When none exists within MAX_ZOOM,
the widest window centred on the subject is taken and marked as not clear. Of several faces, when
no window keeps them all clear, the largest alone is kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from streams.families import Zone

Reason = Literal["face", "focal-point", "entropy"]
MAX_ZOOM = 2.0  # a window may be as small as half the widest one: twice the upscaling, at most
ZOOM_STEP = 1.04


@dataclass(frozen=True)
class Box:
    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def centre(self) -> tuple[float, float]:
        return self.left + self.width / 2, self.top + self.height / 2


@dataclass(frozen=True)
class Subject:
    """What a crop must keep, in master pixels, and how it was found."""

    box: Box
    reason: Reason
    largest: Box | None = None  # of several faces: the one to keep when all of them cannot be


@dataclass(frozen=True)
class Frame:
    box: tuple[int, int, int, int]  # (left, top, width, height) of the master, whole pixels
    clear: bool  # the subject is inside the window and out of every safe zone


def frame(master: tuple[int, int], target: tuple[int, int], subject: Subject, zones: Sequence[Zone] = ()) -> Frame:
    """The crop of `master` (width, height) for a `target` (width, height) derivative."""
    framed = _frame(master, target, subject.box, zones)
    if not framed.clear and subject.largest is not None:
        alone = _frame(master, target, subject.largest, zones)
        if alone.clear:
            return alone
    return framed


def _frame(master: tuple[int, int], target: tuple[int, int], box: Box, zones: Sequence[Zone]) -> Frame:
    master_w, master_h = master
    aspect = target[0] / target[1]
    widest = min(float(master_w), master_h * aspect)
    width = widest
    while width >= widest / MAX_ZOOM - 1e-9:
        height = width / aspect
        if width < box.width or height < box.height:
            break  # a smaller window cannot hold the subject either
        place = _place(master, width, height, box, zones)
        if place is not None:
            return Frame(_whole(master, place[0], place[1], width, height), clear=True)
        width /= ZOOM_STEP
    # no window keeps the subject clear: the widest one, as near the subject's centre as it goes
    height = widest / aspect
    cx, cy = box.centre
    left = min(max(cx - widest / 2, 0.0), master_w - widest)
    top = min(max(cy - height / 2, 0.0), master_h - height)
    return Frame(_whole(master, left, top, widest, height), clear=False)


def _place(
    master: tuple[int, int], width: float, height: float, box: Box, zones: Sequence[Zone]
) -> tuple[float, float] | None:
    """The window position (left, top) nearest the subject's centre that keeps it clear, if any.

    Containment and the master's edges bound left and top to one interval each. A zone is clear
    when the subject is left of, right of, above or below it: one of four more bounds. Each choice
    per zone gives an interval per axis; the nearest point over the non-empty ones wins.
    """
    base = (
        (max(0.0, box.right - width), min(master[0] - width, box.left)),
        (max(0.0, box.bottom - height), min(master[1] - height, box.top)),
    )
    options = []
    for zone in zones:
        options.append(
            [
                (0, box.right - zone.left * width, None),  # left of the zone: left >= ...
                (0, None, box.left - (zone.left + zone.width) * width),  # right of it: left <= ...
                (1, box.bottom - zone.top * height, None),  # above it
                (1, None, box.top - (zone.top + zone.height) * height),  # below it
            ]
        )
    wanted = (box.centre[0] - width / 2, box.centre[1] - height / 2)
    best: tuple[float, tuple[float, float]] | None = None
    for choice in itertools.product(*options):
        bounds = [list(base[0]), list(base[1])]
        for axis, low, high in choice:
            if low is not None:
                bounds[axis][0] = max(bounds[axis][0], low)
            if high is not None:
                bounds[axis][1] = min(bounds[axis][1], high)
        if any(low > high + 1e-6 for low, high in bounds):
            continue
        point = tuple(min(max(w, low), high) for w, (low, high) in zip(wanted, bounds, strict=True))
        distance = (point[0] - wanted[0]) ** 2 + (point[1] - wanted[1]) ** 2
        if best is None or distance < best[0]:
            best = (distance, (point[0], point[1]))
    return None if best is None else best[1]


def _whole(master: tuple[int, int], left: float, top: float, width: float, height: float) -> tuple[int, int, int, int]:
    w, h = min(master[0], max(1, round(width))), min(master[1], max(1, round(height)))
    x, y = min(max(0, round(left)), master[0] - w), min(max(0, round(top)), master[1] - h)
    return x, y, w, h
