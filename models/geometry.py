"""Face geometry: where the landmarks of an aligned face sit and which crop the model sees.

It is part of what a checkpoint was trained on, so it travels in the checkpoint's
config.json (`face_geometry`) and the service aligns photos with the model's own numbers.
Coordinates are in pixels of the reference frame (CelebA's aligned 178 x 218 images).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # left/right as seen


@dataclass(frozen=True)
class FaceGeometry:
    frame: tuple[int, int]  # width, height of the reference frame
    crop_box: tuple[float, float, float, float]  # left, top, right, bottom of the model's crop
    landmarks: tuple[tuple[float, float], ...]  # (5, 2), in LANDMARK_NAMES order

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.crop_box
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"crop_box must have right > left and bottom > top, got {self.crop_box}")
        if len(self.landmarks) != len(LANDMARK_NAMES) or any(len(p) != 2 for p in self.landmarks):
            raise ValueError(f"landmarks must be {len(LANDMARK_NAMES)} (x, y) points")

    def template(self, size: int) -> np.ndarray:
        """The landmarks inside a size x size crop: (5, 2) float32."""
        x0, y0, x1, y1 = self.crop_box
        pts = (np.asarray(self.landmarks, np.float64) - (x0, y0)) * (size / (x1 - x0), size / (y1 - y0))
        return pts.astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "landmark_names": list(LANDMARK_NAMES)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaceGeometry:
        return cls(
            frame=tuple(raw["frame"]),  # type: ignore[arg-type]
            crop_box=tuple(float(v) for v in raw["crop_box"]),  # type: ignore[arg-type]
            landmarks=tuple((float(x), float(y)) for x, y in raw["landmarks"]),
        )


# CelebA's aligned images: a 140 x 140 crop around the eyes (y = 111) and mouth (y = 152) that
# keeps the hair line for hair attributes. The landmarks are the mean of what the service's
# detector (YuNet) finds on 3,000 aligned CelebA faces, so alignment has no detector bias.
CELEBA = FaceGeometry(
    frame=(178, 218),
    crop_box=(19.0, 50.0, 159.0, 190.0),
    landmarks=((69.3, 110.6), (108.2, 110.8), (88.3, 133.5), (72.2, 151.3), (105.2, 151.7)),
)

# The image-to-image editor's crop holds what its attributes change: the whole head with its hair
# (Blond_Hair, Bald, Bangs), not only the face. CelebA's aligned frame at its full width, from
# above the crown to below the chin; the landmarks are CELEBA's, so one alignment serves both.
CELEBA_HEAD = FaceGeometry(frame=CELEBA.frame, crop_box=(0.0, 20.0, 178.0, 198.0), landmarks=CELEBA.landmarks)
GEOMETRIES = {"celeba": CELEBA, "head": CELEBA_HEAD}  # by the name a command line gives


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity transform (Umeyama 1991) taking points src to dst: (2, 3).

    src, dst: (N, 2) with N >= 2. Rotation, uniform scale and translation only, so a face
    is never sheared or stretched on its way into the crop.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign) / max(s.var(0).sum(), 1e-12))
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = md - scale * rot @ ms
    return m
