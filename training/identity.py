"""An independent identity judge: dlib's ResNet face descriptor (same person below 0.6).

Independent of the service: its own detector (dlib's HOG), its own 5-point landmarks, its
own network. The model files (CC0) ship inside the `face-recognition-models` package; its
folder is found with importlib, without importing it (its __init__ needs pkg_resources).
Install with `pip install -e '.[identity]'`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

SAME_PERSON = 0.6  # dlib's threshold: 99.38% on LFW


def available() -> bool:
    return (
        importlib.util.find_spec("dlib") is not None and importlib.util.find_spec("face_recognition_models") is not None
    )


def _models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the identity judge needs `pip install -e '.[identity]'` (dlib-bin, face-recognition-models)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class IdentityJudge:
    def __init__(self) -> None:
        import dlib

        models = _models_dir()
        self._dlib: Any = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def locate(self, photo: np.ndarray, hint: tuple[int, int, int, int] | None = None) -> Any:
        """The largest face dlib finds (a dlib.rectangle); `hint` (x, y, w, h) when it finds none."""
        found = self.detector(photo, 1 if max(photo.shape[:2]) < 1500 else 0)
        if len(found):
            return max(found, key=lambda r: r.area())
        if hint is None:
            return None
        x, y, w, h = hint
        return self._dlib.rectangle(int(x), int(y), int(x + w), int(y + h))

    def descriptor(self, photo: np.ndarray, rect: Any) -> np.ndarray:
        """The 128-d descriptor of the face in `rect` of an (H, W, 3) uint8 RGB photo."""
        shape = self.landmarks(np.ascontiguousarray(photo), rect)
        return np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(photo), shape))

    def distance(self, a: np.ndarray, b: np.ndarray, rect: Any) -> float:
        """Descriptor distance of the faces at `rect` in photos a and b (same size)."""
        return float(np.linalg.norm(self.descriptor(a, rect) - self.descriptor(b, rect)))
