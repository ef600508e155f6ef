"""The way out: an edit's change composited into a real photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.areas import HEAD, Area, change_mask, union
from models.geometry import CELEBA
from worker.pipeline import faces
from worker.pipeline.composite import apply_change
from worker.pipeline.images import decode_photo


def _photo(path: Path) -> np.ndarray:
    return decode_photo(path.read_bytes(), 40_000_000).pixels


def test_a_change_lands_where_it_acts_and_grey_stays_grey(photos: Path) -> None:
    photo = _photo(photos / "astronaut.png")
    crop = faces.align(photo, faces.detect_faces(photo)[0], 64, CELEBA)
    delta = np.zeros((64, 64, 3), np.float32)
    delta[40:50, 20:44] = (60, -20, -20)  # a reddish change around the mouth
    mask = change_mask(delta, crop.valid)
    assert mask[45, 32] > 0.5 and mask[5, 5] == 0 and mask[32, 2] < 0.05  # none in the corners or at the border
    out = apply_change(photo, delta, mask, crop.matrix, grayscale=False)
    moved = np.abs(out.astype(int) - photo).max(2) > 0
    ys, xs = np.nonzero(moved)
    mouth = (np.c_[faces.detect_faces(photo)[0].landmarks[3:], np.ones(2)]).mean(0)[:2]
    assert abs(xs.mean() - mouth[0]) < 15 and abs(ys.mean() - mouth[1]) < 15
    grey = np.repeat(photo.mean(2, keepdims=True).astype(np.uint8), 3, 2)
    out_grey = apply_change(grey, delta, mask, crop.matrix, grayscale=True)
    assert faces.is_grayscale(out_grey) and not np.array_equal(out_grey, grey)


def test_an_edit_acts_only_in_its_area(photos: Path) -> None:
    photo = _photo(photos / "astronaut.png")
    face = faces.detect_faces(photo)[0]
    crop = faces.align(photo, face, 64, CELEBA)
    delta = np.full((64, 64, 3), 40, np.float32)  # a change all over the crop
    eyes_mid, mouth_mid = face.landmarks[:2].mean(0), face.landmarks[3:].mean(0)

    def changed_at(area: Area, point: np.ndarray) -> bool:
        mask = change_mask(delta, crop.valid, area, CELEBA)
        out = apply_change(photo, delta, mask, crop.matrix, grayscale=False)
        x, y = np.round(point).astype(int)
        return bool(np.abs(out[y, x].astype(int) - photo[y, x]).max() > 10)

    eyes, mouth = Area(regions=("eyes",)), Area(regions=("mouth",))
    assert changed_at(eyes, eyes_mid) and not changed_at(eyes, mouth_mid)
    assert changed_at(mouth, mouth_mid) and not changed_at(mouth, eyes_mid)
    both = union([eyes, mouth])
    assert changed_at(both, eyes_mid) and changed_at(both, mouth_mid)
    hair = Area(regions=("hair",))
    above = eyes_mid + (0, -1.1 * np.linalg.norm(face.landmarks[1] - face.landmarks[0]))  # the hairline
    assert not changed_at(hair, eyes_mid) and not changed_at(hair, mouth_mid) and changed_at(hair, above)
    assert changed_at(HEAD, eyes_mid) and changed_at(HEAD, above)
