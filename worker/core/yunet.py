"""YuNet in a process of its own: `yuface.detect` holds the GIL for as long as it runs (94 ms
on a 640 px photo on these 2-core hosts, 0.5 s at 1280 px), so run in the service's process it
stops the event loop, /health included, for that long.

One child process per service process (`python -m worker.core.yunet`, which imports numpy and
yuface, not torch, and never the parent's main module) runs every detection, one at a time
(libfacedetection keeps scratch buffers per call). Requests and answers are raw arrays over its
stdin and stdout; a child that died is started again.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
import warnings
from typing import IO

import numpy as np

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # confidences (N,), boxes (N, 4), points (N, 5, 2)
_REQUEST = struct.Struct("<IIf")  # height, width, min_score; then height * width * 3 bytes of BGR
_ANSWER = struct.Struct("<I")  # N; then N float32 confidences, N * 4 box and N * 10 point coordinates


def detect_here(bgr: np.ndarray, min_score: float) -> Detections:
    """YuNet on a BGR image, in this process."""
    import yuface

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "too large": the second pass is large on purpose
        confs, boxes, points = yuface.detect(np.ascontiguousarray(bgr), conf=min_score)
    return confs.astype(np.float32), boxes.astype(np.float32), points.astype(np.float32).reshape(-1, 5, 2)


def _read(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError("the detector process closed its pipe")
    return data


class _Child:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker.core.yunet"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def detect(self, bgr: np.ndarray, min_score: float) -> Detections:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        h, w = bgr.shape[:2]
        self.proc.stdin.write(_REQUEST.pack(h, w, min_score) + np.ascontiguousarray(bgr, np.uint8).tobytes())
        self.proc.stdin.flush()
        (n,) = _ANSWER.unpack(_read(self.proc.stdout, _ANSWER.size))
        values = np.frombuffer(_read(self.proc.stdout, 4 * 15 * n), np.float32)
        return values[:n].copy(), values[n : 5 * n].reshape(n, 4).copy(), values[5 * n :].reshape(n, 5, 2).copy()


_child: _Child | None = None
_lock = threading.Lock()


def detect(bgr: np.ndarray, min_score: float) -> Detections:
    """YuNet on a BGR image, in the detector's process (started on first use, again if it died)."""
    global _child
    with _lock:
        for attempt in range(2):
            if _child is None or _child.proc.poll() is not None:
                _child = _Child()
            try:
                return _child.detect(bgr, min_score)
            except (EOFError, BrokenPipeError, OSError):
                _child.proc.kill()
                _child = None
                if attempt:
                    raise
    raise AssertionError("unreachable")


def _serve() -> None:
    """The child: answer requests on stdin until the parent closes it."""
    src, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = src.read(_REQUEST.size)
        if len(head) < _REQUEST.size:
            return
        h, w, min_score = _REQUEST.unpack(head)
        bgr = np.frombuffer(_read(src, h * w * 3), np.uint8).reshape(h, w, 3)
        confs, boxes, points = detect_here(bgr, min_score)
        out.write(_ANSWER.pack(len(confs)) + confs.tobytes() + boxes.tobytes() + points.tobytes())
        out.flush()


if __name__ == "__main__":
    _serve()
