"""Choosing the crop window: the subject inside, out of the safe zones, with the least zoom."""

from __future__ import annotations

import pytest

from inference.framing import MAX_ZOOM, Box, Subject, frame
from streams.families import Zone

STORY_BANDS = (Zone(top=0.0, height=0.14), Zone(top=0.80, height=0.20))
DURATION_BADGE = (Zone(left=0.85, top=0.88, width=0.15, height=0.12),)
PHONE_SIDES = (Zone(left=0.0, width=0.162), Zone(left=0.838, width=0.162))


def face(left: float, top: float, width: float, height: float) -> Subject:
    return Subject(Box(left, top, width, height), "face")


def in_target(box: Box, crop: tuple[int, int, int, int]) -> Box:
    """`box` (master pixels) in fractions of the crop window."""
    left, top, width, height = crop
    return Box((box.left - left) / width, (box.top - top) / height, box.width / width, box.height / height)


def clear_of(box: Box, zone: Zone, slack: float = 0.002) -> bool:
    return (
        box.right <= zone.left + slack
        or box.left >= zone.left + zone.width - slack
        or box.bottom <= zone.top + slack
        or box.top >= zone.top + zone.height - slack
    )


def test_a_centred_subject_gets_the_widest_window_centred_on_it() -> None:
    framed = frame((1920, 1080), (1080, 1080), face(900, 400, 120, 150))
    assert framed == frame((1920, 1080), (1080, 1080), face(900, 400, 120, 150))
    assert framed.clear and framed.box == (420, 0, 1080, 1080)  # centre 960 = the face's centre


def test_the_window_stops_at_the_master_s_edges() -> None:
    # a face at the far left: the square goes as far left as it can and no further
    assert frame((1920, 1080), (1080, 1080), face(20, 400, 120, 150)).box == (0, 0, 1080, 1080)


def test_a_face_in_the_story_s_top_band_is_zoomed_down_out_of_it() -> None:
    # a portrait master as big as the story: at full frame the face is under the profile bar
    subject = face(600, 150, 200, 260)
    framed = frame((1080, 1920), (1080, 1920), subject, STORY_BANDS)
    _left, top, width, _height = framed.box
    assert framed.clear and 1080 / MAX_ZOOM <= width < 1080 and top == 0
    where = in_target(subject.box, framed.box)
    assert all(clear_of(where, zone) for zone in STORY_BANDS)
    assert where.left >= 0 and where.right <= 1  # and still whole
    # the least zoom that does it: a window 4 % wider would put the face back under the bar
    assert where.top == pytest.approx(0.14, abs=0.14 * 0.05)


def test_a_face_in_the_youtube_duration_corner_is_moved_out_of_it() -> None:
    subject = face(1600, 780, 160, 180)  # bottom right of a 1920x1080 landscape
    framed = frame((1920, 1080), (1280, 720), subject, DURATION_BADGE)
    assert framed.clear
    assert clear_of(in_target(subject.box, framed.box), DURATION_BADGE[0])


def test_a_subject_near_a_cover_s_side_stays_in_what_phones_show() -> None:
    subject = face(1850, 300, 300, 380)  # right of a 2560x1097 hero, at the edge of what phones show
    framed = frame((2560, 1097), (851, 315), subject, PHONE_SIDES)
    where = in_target(subject.box, framed.box)
    assert framed.clear and all(clear_of(where, zone) for zone in PHONE_SIDES)


def test_a_face_deep_in_the_duration_corner_cannot_be_cleared_within_the_zoom_limit() -> None:
    framed = frame((1920, 1080), (1280, 720), face(1700, 850, 180, 200), DURATION_BADGE)
    assert not framed.clear and framed.box == (0, 0, 1920, 1080)


def test_when_no_window_keeps_the_subject_clear_the_widest_is_centred_on_it_and_marked() -> None:
    subject = face(500, 0, 200, 300)  # touching the top edge: always under the story's top band
    framed = frame((1080, 1920), (1080, 1920), subject, STORY_BANDS)
    assert not framed.clear and framed.box == (0, 0, 1080, 1920)


def test_of_faces_too_far_apart_the_largest_alone_is_kept() -> None:
    largest = Box(1500, 300, 300, 360)
    both = Subject(Box(100, 300, 1700, 360), "face", largest=largest)
    framed = frame((1920, 1080), (1080, 1080), both)
    assert framed.clear
    where = in_target(largest, framed.box)
    assert where.left >= 0 and where.right <= 1


def test_a_focal_point_is_centred_as_far_as_the_master_allows() -> None:
    point = Subject(Box(1200, 540, 0, 0), "focal-point")  # five eighths across
    assert frame((1920, 1080), (1080, 1080), point).box == (660, 0, 1080, 1080)
    point = Subject(Box(960, 270, 0, 0), "focal-point")  # a quarter down, in a wide crop
    assert frame((1920, 1080), (1920, 540), point).box == (0, 0, 1920, 540)
    assert frame((1920, 1080), (1920, 540), Subject(Box(960, 800, 0, 0), "focal-point")).box == (0, 530, 1920, 540)
