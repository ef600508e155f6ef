"""The background scores the editor's training keeps its mask off (training/background.py)."""

from __future__ import annotations

import numpy as np

from models.areas import region_mask
from models.editnet import HEAD_GEOMETRY
from training.background import BackgroundMaps


def _head(size: int, wall: tuple[int, int, int], hair: tuple[int, int, int], skin: tuple[int, int, int],
          rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """A head crop: a wall, the head's oval of hair, the face's ellipse of skin, a little noise."""
    head, face = (region_mask(HEAD_GEOMETRY, size, r)[..., None] for r in ("head", "face"))
    img = np.array(wall) * (1 - head) + np.array(hair) * head
    img = img * (1 - face) + np.array(skin) * face
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def test_the_wall_scores_high_the_hair_low_and_the_face_nothing() -> None:
    rng = np.random.default_rng(0)
    size = 64
    maps = BackgroundMaps(HEAD_GEOMETRY, size)
    faces = np.stack([
        _head(size, (235, 235, 230), (40, 30, 25), (225, 180, 150), rng),  # dark hair, a white wall
        _head(size, (30, 40, 90), (230, 200, 120), (200, 150, 120), rng),  # blond hair, a dark blue wall
    ])  # fmt: skip
    scores = maps(faces)
    assert scores.shape == (2, size, size) and scores.dtype == np.float32
    assert float(scores.min()) >= 0 and float(scores.max()) <= 1
    head, face = (region_mask(HEAD_GEOMETRY, size, r) for r in ("head", "face"))
    wall, hair = head < 0.01, (head > 0.99) & (face < 0.01)
    wall[-size // 4 :] = False  # the shoulders' rows are not sampled as the wall
    for s in scores:
        assert float(s[wall].mean()) > 0.8 and float(s[hair].mean()) < 0.2
        assert float(s[face > 0.99].max()) < 0.01  # the face is the person, whatever its colour
    # a hair the colour of the wall cannot be told from it: the score says so (in between or high)
    same = maps(_head(size, (120, 110, 100), (120, 110, 100), (225, 180, 150), rng)[None])[0]
    assert float(same[hair].mean()) > 0.3
