"""The way out of the model: an edit composited into the user's photo.

An edit goes back into the photo as a change, not as a new face (Brock et al. 2017, Neural
Photo Editor): photo + mask * (G(z + offset) - G(z)), the change and its mask warped from the
crop to the photo's pixels, so the user's own pixels, skin tone and grain stay wherever the
edit does not act; a black-and-white photo gets a black-and-white change. Only the face's
rectangle is touched. The service's answers, the optimised-edit job, calibration and
evaluation all composite through `edited_photo`.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch

from models.areas import HEAD, Area, change_mask
from worker.core.engine import Engine
from worker.core.faces import Aligned
from worker.core.latents import Encoded

Blend = Literal["change", "generated"]


def edited_photo(
    engine: Engine, enc: Encoded, z_edit: torch.Tensor, blend: Blend = "change", area: Area = HEAD
) -> np.ndarray:
    """The photo with the edit: its own pixels + mask * (G(z + edit) - G(z)) (the default),
    or the generated face blended over it (`blend="generated"`)."""
    assert enc.photo is not None and enc.aligned is not None
    if blend == "generated":
        face_img = engine.render(z_edit)[0]
        return paste_face(enc.photo.pixels, face_img, enc.aligned, enc.grayscale)
    both = engine.render(torch.cat([enc.z[None], z_edit]))  # one pass for the two renders
    delta = both[1].astype(np.float32) - both[0].astype(np.float32)
    mask = change_mask(delta, enc.aligned.valid, area, engine.geometry)
    return apply_change(enc.photo.pixels, delta, mask, enc.aligned.matrix, enc.grayscale)


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
