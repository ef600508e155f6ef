"""One real bound on photo memory: the bytes of the photos in flight, not a count of threads.

Every request that decodes, pastes or encodes a whole photo first reserves what that photo will
cost (`photo_cost`, read from the image header before anything is decoded) and holds it until
its answer is encoded. Requests whose reservations do not fit wait, in arrival order, up to a
deadline; then they get 503 with Retry-After. A photo larger than the whole budget runs alone.
"""

from __future__ import annotations

import ctypes
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from worker.pipeline.errors import Busy

# Working copies of a photo's pixels while a request holds it: the decoded image, its RGB /
# upright conversions, the cached copy, the edited copy and the encoder's buffers (measured: a
# paste of a 39 Mpx PNG scaled to 16 Mpx peaks at +422 MB, this estimate says 453 MB).
COPIES = 7
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters


def give_freed_photos_back() -> None:
    """Make freed photo buffers leave the process. glibc serves allocations under its mmap
    threshold from per-thread heaps and raises that threshold to 32 MB after each big free, so
    photos decoded by many request threads stay resident as fragments (measured: +150 MB kept
    after each 39 Mpx paste). A fixed 1 MB threshold maps every photo-sized buffer on its own and
    unmaps it when freed (measured: nothing kept). Not glibc: nothing to do."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
    libc.mallopt(M_ARENA_MAX, 4)


def photo_cost(data: bytes, work_pixels: int) -> int:
    """Bytes a request on this upload may hold at its peak: the decode at the header's size (a
    JPEG decodes at most at `work_pixels`, by DCT scaling), plus the working copies at the size
    it is scaled to. Unreadable headers cost the size of the upload (they fail at decoding)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            fmt, bands = im.format, len(im.getbands())
    except Exception:  # noqa: BLE001 - not an image: decoding will say so, with its own status
        return len(data)
    pixels = w * h
    work = min(pixels, work_pixels)
    decoded = (work if fmt == "JPEG" else pixels) * max(bands, 3)
    return decoded + COPIES * 3 * work


class PhotoBudget:
    """A byte budget shared by the threads of one process."""

    def __init__(self, max_bytes: int, wait_s: float) -> None:
        self.max_bytes, self.wait_s = max_bytes, wait_s
        self.in_use = 0
        self._cond = threading.Condition()
        self._queue: list[object] = []  # tickets of waiting reservations, first come first served

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold `nbytes` (at most the whole budget) while the block runs; Busy past the wait."""
        n = min(nbytes, self.max_bytes)
        ticket = object()
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self.in_use + n > self.max_bytes:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Busy(
                            f"the service is working on {self.in_use // 2**20} MiB of photos; try again shortly",
                            retry_after_s=Busy.retry_after_s,
                        )
                    self._cond.wait(left)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()
            self.in_use += n
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= n
                self._cond.notify_all()
