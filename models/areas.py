"""Where in the aligned crop an edit acts, and the mask that lets it act there.

Pure functions on arrays in the crop's pixels (no photo, no I/O): an `Area` is chosen per
attribute when its strength is calibrated and travels in the checkpoint with it
(`models.edits.Calibration`); `change_mask` turns an edit's change G(z + offset) - G(z) and
its area into the weight each crop pixel of the change gets. The service warps that
weighted change into the user's photo (`worker.pipeline.composite`); calibration and
evaluation apply it to crops the same way. cv2 does the Gaussian blurs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from models.geometry import FaceGeometry

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
        """From {"focus": [low, high], "regions": [...]}; both optional (calibrated before areas)."""
        focus = raw.get("focus", NO_FOCUS)
        regions = raw.get("regions", ("head",))
        if not (isinstance(focus, list | tuple) and len(focus) == 2) or not isinstance(regions, list | tuple):
            raise ValueError(f"an area is {{'focus': [low, high], 'regions': [...]}}, got {raw}")
        low, high = float(focus[0]), float(focus[1])
        if not 0 <= low <= high <= 1:
            raise ValueError(f"focus must be 0 <= low <= high <= 1 (fractions of the strongest change), got {focus}")
        return cls((low, high), tuple(str(r) for r in regions))


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
