"""Synthetic masters for tests and benchmarks: photo-like scenes (smooth sky and ground, a sun,
light grain) with a drawn face that OpenCV's frontal-face cascade finds, and whose whole head box is
known, so a test can check what a crop kept."""

from __future__ import annotations

import cv2
import numpy as np
import pyvips

Box = tuple[int, int, int, int]  # left, top, width, height

# A face off-centre in each family's master (centre and width, in fractions), placed where a naive
# crop would lose it or put it under platform UI: under the story's top band, in the YouTube badge's
# corner, at a Facebook cover's side.
FACES = {
    "square": ((0.25, 0.62), 0.2),
    "landscape": ((0.8, 0.78), 0.17),
    "portrait": ((0.7, 0.2), 0.18),
    "hero": ((0.74, 0.45), 0.28),
    "facebook-og": ((0.3, 0.5), 0.3),
}


def to_vips(rgb: np.ndarray) -> pyvips.Image:
    return pyvips.Image.new_from_array(np.ascontiguousarray(rgb)).copy(interpretation="srgb").copy_memory()


def scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Sky over ground with a sun: the smooth content of real photos (and their encoding cost)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = np.stack([90 + 80 * y / height, 150 + 60 * y / height, 230 - 30 * y / height], axis=-1)
    ground = np.stack([70 + 30 * x / width, 120 + 40 * y / height, 60 + 0 * x], axis=-1)
    horizon = height * 0.62
    rgb = np.where((y > horizon + 12 * np.sin(x / 90))[..., None], ground, sky)
    cv2.circle(rgb, (int(width * 0.18), int(height * 0.2)), max(8, min(width, height) // 14), (250, 220, 120), -1)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 1.5)
    grain = np.random.default_rng(seed).normal(0, 3, rgb.shape)
    return np.clip(rgb + grain, 0, 255).astype(np.uint8)


def draw_face(rgb: np.ndarray, centre: tuple[int, int], size: int) -> Box:
    """A face `size` wide centred at `centre`, drawn in place (RGB). Returns the head's box, hair
    and chin included."""
    cx, cy = centre
    s = size
    face = np.zeros_like(rgb)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    skin, hair, eye, brow, lips = (225, 180, 150), (60, 40, 30), (20, 30, 40), (60, 40, 40), (170, 80, 80)
    cv2.ellipse(face, (cx, cy), (s // 2, int(s * 0.65)), 0, 0, 360, skin, -1)
    cv2.ellipse(face, (cx, cy - int(s * 0.35)), (int(s * 0.55), int(s * 0.4)), 0, 180, 360, hair, -1)
    eye_y, eye_dx = cy - int(s * 0.08), int(s * 0.2)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        cv2.ellipse(face, (ex, eye_y), (int(s * 0.11), int(s * 0.05)), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(face, (ex, eye_y), int(s * 0.045), eye, -1)
        brow_y = eye_y - int(s * 0.1)
        cv2.line(
            face, (ex - int(s * 0.12), brow_y), (ex + int(s * 0.12), brow_y - int(s * 0.01)), brow, max(2, s // 30)
        )
    cv2.line(
        face, (cx, eye_y + int(s * 0.05)), (cx - int(s * 0.04), cy + int(s * 0.18)), (190, 140, 110), max(2, s // 40)
    )
    cv2.ellipse(face, (cx, cy + int(s * 0.33)), (int(s * 0.15), int(s * 0.05)), 0, 0, 360, lips, -1)
    cv2.ellipse(mask, (cx, cy), (s // 2, int(s * 0.65)), 0, 0, 360, 255, -1)
    cv2.ellipse(mask, (cx, cy - int(s * 0.35)), (int(s * 0.55), int(s * 0.4)), 0, 180, 360, 255, -1)
    face = cv2.GaussianBlur(face, (0, 0), s / 60)
    mask = cv2.GaussianBlur(mask, (0, 0), s / 60)[..., None] / 255.0
    rgb[:] = np.clip(rgb * (1 - mask) + face * mask, 0, 255).astype(np.uint8)
    left, top = cx - int(s * 0.55), cy - int(s * 0.75)
    return left, top, int(s * 1.1), int(s * 1.4)


def face_master(width: int, height: int, centre: tuple[float, float], size: float) -> tuple[pyvips.Image, Box]:
    """A scene with a face at `centre` (fractions of the master), `size` wide (fraction of the
    shorter side); the master and the head's box."""
    rgb = scene(width, height)
    s = round(size * min(width, height))
    head = draw_face(rgb, (round(centre[0] * width), round(centre[1] * height)), s)
    return to_vips(rgb), head
