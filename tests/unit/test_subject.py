"""Finding a master's subject: a focal point first, then faces, then the busiest region."""

from __future__ import annotations

import numpy as np

from inference import subject
from inference.framing import Box
from tests.pictures import draw_face, face_master, scene, to_vips


def contains(outer: Box, inner: tuple[int, int, int, int]) -> bool:
    left, top, width, height = inner
    return outer.left <= left and outer.top <= top and left + width <= outer.right and top + height <= outer.bottom


def test_a_face_off_centre_is_found_with_its_whole_head() -> None:
    master, head = face_master(1920, 1080, centre=(0.75, 0.35), size=0.25)
    found = subject.find(master)
    assert found.reason == "face"
    assert contains(found.box, head)
    # widened to the head, not to the picture
    assert found.box.width < 2 * head[2] and found.box.height < 2 * head[3]


def test_of_two_faces_the_subject_spans_both_and_knows_the_larger() -> None:
    rgb = scene(1920, 1080)
    small = draw_face(rgb, (400, 500), 200)
    large = draw_face(rgb, (1400, 450), 300)
    found = subject.find(to_vips(rgb))
    assert found.reason == "face" and contains(found.box, small) and contains(found.box, large)
    assert found.largest is not None and contains(found.largest, large) and not contains(found.largest, small)


def test_without_a_face_the_busiest_region_is_the_subject() -> None:
    pixels = np.full((1080, 1920, 3), 120, np.uint8)
    pixels[700:1000, 1500:1850] = np.random.default_rng(1).integers(0, 256, (300, 350, 3))  # detail, bottom right
    found = subject.find(to_vips(pixels))
    assert found.reason == "entropy"
    # the detail's centre is inside the region kept
    assert found.box.left <= 1675 <= found.box.right and found.box.top <= 850 <= found.box.bottom
    assert found.box.width == 0.4 * 1920 and found.box.height == 0.4 * 1080


def test_a_focal_point_wins_over_a_face() -> None:
    master, _ = face_master(1920, 1080, centre=(0.75, 0.35), size=0.25)
    found = subject.find(master, focal_point=(0.1, 0.9))
    assert found.reason == "focal-point" and found.box == Box(192.0, 972.0, 0.0, 0.0)
