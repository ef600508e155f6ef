"""YuNet in a process of its own: `yuface.detect` holds the GIL for as long as it runs (94 ms
on a 640 px photo on these 2-core hosts, 0.5 s at 1280 px), so run in the service's process it
stops the event loop, /health included, for that long. One child process per service process
runs every detection (libfacedetection keeps scratch buffers per call: one at a time); this
module is all the child imports (numpy and yuface, not torch)."""

from __future__ import annotations

import multiprocessing
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # confidences (N,), boxes (N, 4), points (N, 5, 2)

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def detect_here(bgr: np.ndarray, min_score: float) -> Detections:
    """YuNet on a BGR image, in this process."""
    import yuface

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "too large": the second pass is large on purpose
        confs, boxes, points = yuface.detect(np.ascontiguousarray(bgr), conf=min_score)
    return confs.astype(np.float32), boxes.astype(np.float32), points.astype(np.float32).reshape(-1, 5, 2)


def detect(bgr: np.ndarray, min_score: float) -> Detections:
    """YuNet on a BGR image, in the detector's process (started on first use, again if it died)."""
    global _pool
    for attempt in range(2):
        with _lock:
            if _pool is None:
                _pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            pool = _pool
        try:
            return pool.submit(detect_here, bgr, min_score).result()
        except BrokenProcessPool:
            with _lock:
                if _pool is pool:
                    _pool = None
            if attempt:
                raise
    raise AssertionError("unreachable")
