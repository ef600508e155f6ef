"""The independent identity judge (dlib's ResNet descriptor) on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.identity import SAME_PERSON, IdentityJudge, available


def test_the_judge_tells_people_apart(photos: Path) -> None:
    assert available()
    judge = IdentityJudge()
    astronaut = np.asarray(Image.open(photos / "astronaut.png").convert("RGB"))
    rect = judge.locate(astronaut)
    assert rect is not None and 150 < rect.left() < 260  # her face
    shifted = np.clip(astronaut.astype(int) + 12, 0, 255).astype(np.uint8)  # the same photo, brighter
    assert judge.distance(astronaut, shifted, rect) < SAME_PERSON / 3
    einstein = np.asarray(Image.open(photos / "einstein.jpg").convert("RGB"))
    other = judge.descriptor(einstein, judge.locate(einstein))
    assert np.linalg.norm(judge.descriptor(astronaut, rect) - other) > SAME_PERSON
