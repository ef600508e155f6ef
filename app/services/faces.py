"""Find faces in whole photos and warp them to the crop the model was trained on, and back.

Detection uses OpenCV's Haar cascades, which ship inside the opencv package (nothing is
downloaded at run time). Eyes are searched inside each face; where they are not found
they are placed where an average face has them. A similarity transform maps the left eye,
right eye and mouth centre onto CelebA's mean aligned landmarks in the training crop.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from app.services.errors import InvalidParameter, NoFace
from training.data import CROP_BOX, LANDMARKS


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height in the photo
    landmarks: np.ndarray  # (3, 2): left eye, right eye, mouth centre, photo pixels
    matrix: np.ndarray  # (2, 3): photo -> aligned crop of size S


def template(size: int) -> np.ndarray:
    """CelebA's mean landmarks inside the training crop, scaled to a size x size face."""
    x0, y0, x1, _ = CROP_BOX
    scale = size / (x1 - x0)
    return np.array([((x - x0) * scale, (y - y0) * scale) for x, y in LANDMARKS], dtype=np.float32)


_detect_lock = threading.Lock()  # OpenCV does not promise that detectMultiScale is thread-safe


@lru_cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    c = cv2.CascadeClassifier(cv2.data.haarcascades + name)  # type: ignore[attr-defined]
    if c.empty():
        raise RuntimeError(f"OpenCV cascade {name} missing from the installed opencv package")
    return c


def _detect(name: str, gray: np.ndarray, *args: Any, **kwargs: Any) -> Sequence[Sequence[int]]:
    """detectMultiScale on the shared cascade, one call at a time (it uses every core itself)."""
    with _detect_lock:
        return _cascade(name).detectMultiScale(gray, *args, **kwargs)


def detect_faces(photo: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h), largest first."""
    gray = cv2.equalizeHist(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
    h, w = gray.shape
    scale = min(1.0, 1024 / max(h, w))  # detection on at most 1024 px: fast on huge photos
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    min_side = max(24, int(min(small.shape) * 0.08))
    found = _detect(
        "haarcascade_frontalface_default.xml", small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    boxes = [(round(x / scale), round(y / scale), round(w / scale), round(h / scale)) for x, y, w, h in found]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def _landmarks(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    # Typical Haar-box proportions: eyes at 38% height, 30% / 70% width; mouth at 78% height.
    guess = np.array([[x + 0.3 * w, y + 0.38 * h], [x + 0.7 * w, y + 0.38 * h], [x + 0.5 * w, y + 0.78 * h]])
    upper = gray[y : y + h // 2 + h // 10, x : x + w]
    eyes = _detect("haarcascade_eye.xml", upper, 1.1, 5, minSize=(max(8, w // 10),) * 2)
    centres = [(x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in eyes]
    left = [c for c in centres if c[0] < x + w / 2]
    right = [c for c in centres if c[0] >= x + w / 2]
    if left and right:
        le = min(left, key=lambda c: abs(c[1] - guess[0, 1]))
        re = min(right, key=lambda c: abs(c[1] - guess[1, 1]))
        eye_dist = np.hypot(re[0] - le[0], re[1] - le[1])
        if 0.25 * w < eye_dist < 0.65 * w:
            mid = np.array([(le[0] + re[0]) / 2, (le[1] + re[1]) / 2])
            # The mouth sits ~1.05 eye distances below the eye midpoint, perpendicular to the eye line.
            d = np.array([re[0] - le[0], re[1] - le[1]]) / eye_dist
            mouth = mid + 1.05 * eye_dist * np.array([-d[1], d[0]])
            return np.array([le, re, mouth])
    return guess


def find_face(photo: np.ndarray, size: int, index: int = 0) -> tuple[Face, int]:
    """The index-th largest face and its alignment; also the number of faces found."""
    boxes = detect_faces(photo)
    if not boxes:
        raise NoFace("no face found in the photo; use a clear, front-facing portrait")
    if not 0 <= index < len(boxes):
        raise InvalidParameter(f"face={index} asked for, but the photo has {len(boxes)} face(s)", faces=len(boxes))
    box = boxes[index]
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    pts = _landmarks(gray, box).astype(np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(pts, template(size), method=cv2.LMEDS)
    return Face(box, pts, matrix), len(boxes)


def align(photo: np.ndarray, face: Face, size: int) -> np.ndarray:
    """The face warped into the training crop: (size, size, 3) uint8."""
    return cv2.warpAffine(photo, face.matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def whole_image_face(photo: np.ndarray, size: int) -> tuple[np.ndarray, Face]:
    """For uploads that are already aligned crops: resize the whole image to the crop."""
    h, w = photo.shape[:2]
    matrix = np.array([[size / w, 0, 0], [0, size / h, 0]], dtype=np.float64)
    to_photo = cv2.invertAffineTransform(matrix)
    landmarks = np.c_[template(size), np.ones(3)] @ to_photo.T  # (3, 2) in the upload's pixels
    face = Face((0, 0, w, h), landmarks, matrix)
    return cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA), face


def paste(photo: np.ndarray, face_img: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Blend an edited aligned face back into the photo at its place, with a soft oval edge."""
    size = face_img.shape[0]
    h, w = photo.shape[:2]
    mask: np.ndarray = np.zeros((size, size), np.float32)
    t = template(size)
    centre = (int(t[:, 0].mean()), int((t[0, 1] + t[2, 1]) / 2))
    axes = (int(size * 0.36), int(size * 0.46))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), size * 0.05)
    mask[mask < 0.02] = 0  # no faint halo over the rest of the photo
    inv = cv2.invertAffineTransform(matrix)
    back = cv2.warpAffine(face_img, inv, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    m = cv2.warpAffine(mask, inv, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    return (photo * (1 - m) + back * m).round().clip(0, 255).astype(np.uint8)
