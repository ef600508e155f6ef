"""The way out of the model: an edit composited into the user's photo.

An edit goes back into the photo as a change, not as a new face (Brock et al. 2017, Neural
Photo Editor): photo + mask * (G(z + offset) - G(z)), the change and its mask warped from the
crop to the photo's pixels, so the user's own pixels, skin tone and grain stay wherever the
edit does not act; a black-and-white photo gets a black-and-white change. Only the face's
rectangle is touched, so an answer can be just that rectangle (`Region`, the page's tile).
The service's answers, the optimised-edit job, calibration and evaluation all composite
through `edited_region` / `edited_photo` (whole photos) or `edited_crop` (aligned crops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch

from models.areas import HEAD, Area, change_mask
from models.geometry import FaceGeometry
from models.pixels import LUMA
from worker.pipeline.encoded import Encoded
from worker.pipeline.engine import Engine
from worker.pipeline.faces import Aligned

Blend = Literal["change", "generated"]
CROP_IS_PHOTO = np.array([[1, 0, 0], [0, 1, 0]], np.float64)  # the warp of a crop to itself


@dataclass(frozen=True)
class Region:
    """The part of a photo an edit touched: its box and the edited pixels there."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the photo's pixels (empty when x1 <= x0)
    pixels: np.ndarray  # (y1 - y0, x1 - x0, 3) uint8


def edited_region(
    engine: Engine, enc: Encoded, z_edit: torch.Tensor, blend: Blend = "change", area: Area = HEAD
) -> Region:
    """The face's rectangle of the photo with the edit: its own pixels + mask * (G(z + edit) -
    G(z)) (the default; G(z) from `enc.base` when the face has it), or the generated face blended
    over it (`blend="generated"`)."""
    assert enc.photo is not None and enc.aligned is not None
    if blend == "generated":
        face_img = engine.render(z_edit)[0]
        return paste_face(enc.photo.pixels, face_img, enc.aligned, enc.grayscale)
    if enc.base is not None:
        base, edited = enc.base, engine.render(z_edit)[0]
    else:
        base, edited = engine.render(torch.cat([enc.z[None], z_edit]))  # one pass for the two renders
    delta, mask = weighted_change(base, edited, enc.aligned.valid, area, engine.geometry)
    return change_region(enc.photo.pixels, delta, mask, enc.aligned.matrix, enc.grayscale)


def weighted_change(
    base: np.ndarray, edited: np.ndarray, valid: np.ndarray, area: Area, geometry: FaceGeometry
) -> tuple[np.ndarray, np.ndarray]:
    """An edit's change in the crop, G(z + edit) - G(z) from the two (S, S, 3) uint8 renders, as
    (S, S, 3) float32 pixels, and the mask (S, S) that weighs it within the edit's area."""
    delta = edited.astype(np.float32) - base.astype(np.float32)
    return delta, change_mask(delta, valid, area, geometry)


def edited_crop(
    crop: np.ndarray, base: np.ndarray, edited: np.ndarray, area: Area, geometry: FaceGeometry
) -> np.ndarray:
    """An aligned crop (S, S, 3) uint8 with an edit composited as the service composites it into a
    photo, the crop being the photo: crop + mask * (edited - base), rounded to uint8."""
    delta, mask = weighted_change(base, edited, np.ones(crop.shape[:2], bool), area, geometry)
    return apply_change(crop, delta, mask, CROP_IS_PHOTO, grayscale=False)


def edited_photo(
    engine: Engine, enc: Encoded, z_edit: torch.Tensor, blend: Blend = "change", area: Area = HEAD
) -> np.ndarray:
    """The whole photo with the edit (see `edited_region`)."""
    assert enc.photo is not None
    return paste(enc.photo.pixels, edited_region(engine, enc, z_edit, blend, area))


def paste(photo: np.ndarray, region: Region) -> np.ndarray:
    out = photo.copy()
    x0, y0, x1, y1 = region.box
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = region.pixels
    return out


def apply_change(
    photo: np.ndarray, delta: np.ndarray, mask: np.ndarray, matrix: np.ndarray, grayscale: bool
) -> np.ndarray:
    """photo + mask * delta, with delta and mask warped from the crop to the photo's pixels."""
    return paste(photo, change_region(photo, delta, mask, matrix, grayscale))


def change_region(
    photo: np.ndarray, delta: np.ndarray, mask: np.ndarray, matrix: np.ndarray, grayscale: bool
) -> Region:
    """(photo + mask * delta) within the crop's bounding rectangle in the photo, delta (S, S, 3)
    float32 and mask (S, S) warped from the crop: the cost does not grow with the photo."""
    h, w = photo.shape[:2]
    size = delta.shape[0]
    inv = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inv.T
    x0, y0 = (int(v) for v in np.floor(corners.min(0)).astype(int).clip(0, None))
    x1, y1 = (int(v) for v in np.ceil(corners.max(0)).astype(int))
    x1, y1 = min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return Region((x0, y0, x0, y0), photo[:0, :0].copy())
    inv_roi = inv.copy()
    inv_roi[:, 2] -= (x0, y0)
    weighted = np.dstack([delta * mask[..., None], mask])  # premultiplied, so the mask's edge carries no colour
    back = cv2.warpAffine(weighted, inv_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    change = back[..., :3]
    if grayscale:
        change = np.repeat(change @ np.array(LUMA, np.float32), 3).reshape(change.shape)
    roi = photo[y0:y1, x0:x1].astype(np.float32) + change
    return Region((x0, y0, x1, y1), roi.round().clip(0, 255).astype(np.uint8))


def paste_face(photo: np.ndarray, face_img: np.ndarray, aligned: Aligned, grayscale: bool) -> Region:
    """The plain generated face blended over the photo's face (the `blend=generated` option)."""
    size = face_img.shape[0]
    own = aligned.pixels.astype(np.float32)
    delta = face_img.astype(np.float32) - own  # replacing the face = adding (new - old) everywhere
    yy, xx = np.mgrid[:size, :size]
    oval = (((xx - size / 2) / (size * 0.38)) ** 2 + ((yy - size * 0.55) / (size * 0.45)) ** 2) <= 1
    mask = cv2.GaussianBlur(oval.astype(np.float32), (0, 0), size * 0.05) * aligned.valid
    return change_region(photo, delta, mask.astype(np.float32), aligned.matrix, grayscale)
