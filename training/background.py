"""Where a head crop is background: a per-face map the editor's training keeps its mask off.

A hair colour may act on the hair's place (models/areas.py's "hair": the head's oval less the
face), but that oval also holds the wall behind a head of short hair, and the guides take a yellow
glow round the head for blond: the editor learnt to paint a halo. No segmenter ships in a wheel
we may use, so each face gets a colour model instead: the hair is what the band just above the
forehead looks like, the background what the crop's upper corners outside the head's oval look like (3 colours
each, k-means in Lab), and a pixel's background score is its nearness to the second against the
first, 0 on the face's ellipse. It is rough (a dark head against a dark wall scores in between),
and it only weighs a training term (training/editnet.py's `background`), so the editor learns to
leave what looks like the wall alone; nothing at serving time depends on it.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.areas import region_mask
from models.geometry import FaceGeometry

COLOURS = 3  # k-means centres per side


class BackgroundMaps:
    """Background scores (B, S, S) in [0, 1] of S x S head crops of one geometry."""

    def __init__(self, geometry: FaceGeometry, size: int) -> None:
        self.size = size
        self.face = region_mask(geometry, size, "face")
        pts = geometry.template(size).astype(np.float64)
        e = float(np.linalg.norm(pts[1] - pts[0]))
        yy = np.mgrid[:size, :size][0] + 0.5
        inside = (self.face > 0.02).astype(np.uint8)  # the face and its soft edge
        k = 2 * max(2, round(0.2 * e)) + 1  # the band: a fifth of the eyes' distance past the edge
        grown = cv2.dilate(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        self.hair = (grown > inside) & (yy < (pts[0][1] + pts[1][1]) / 2 - 0.2 * e)  # above the brows
        # the wall: outside the head's oval, above the shoulders (the upper 60% of the crop)
        self.wall = (region_mask(geometry, size, "head") < 0.05) & (yy < 0.6 * size)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """faces (B, S, S, 3) uint8 RGB -> (B, S, S) float32."""
        out = np.empty(faces.shape[:3], np.float32)
        for i, face in enumerate(faces):
            lab = cv2.cvtColor(face.astype(np.float32) / 255, cv2.COLOR_RGB2Lab).reshape(-1, 3)
            near = [_nearest(lab, _centres(lab[where.reshape(-1)])) for where in (self.hair, self.wall)]
            score = near[0] / (near[0] + near[1] + 1e-3)  # 1: the wall's colour, 0: the hair's
            score = cv2.GaussianBlur(score.reshape(self.size, self.size), (3, 3), 0)
            out[i] = score * (1 - self.face)
        return out


def _centres(pixels: np.ndarray) -> np.ndarray:
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)
    _, _, centres = cv2.kmeans(pixels, COLOURS, None, criteria, 1, cv2.KMEANS_PP_CENTERS)  # type: ignore[call-overload]
    return np.asarray(centres)


def _nearest(pixels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.sqrt(((pixels[:, None] - centres[None]) ** 2).sum(-1)).min(1)
