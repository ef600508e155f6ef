"""What an edit of a stored face needs and never changes, kept decoded in this process.

A face's photo, decoded, and G(z) of its latent are the same for every edit of it: `/encode`
computes them once and keeps them here, so an edit renders one face (not two) and decodes
nothing. Least recently used first out, capped in bytes (FACEEDIT_FACE_CACHE_BYTES). It is a
cache, never the record: the store says whether a face exists (an expired face is not served
from here), and a miss (another API process, an evicted entry) decodes from the store's bytes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from worker.pipeline.images import Photo


@dataclass(frozen=True)
class Prepared:
    photo: Photo
    base: np.ndarray  # (S, S, 3) uint8: G(z) of the face as stored

    @property
    def nbytes(self) -> int:
        p = self.photo
        return p.pixels.nbytes + (p.alpha.nbytes if p.alpha is not None else 0) + len(p.exif) + self.base.nbytes


class FaceCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, Prepared] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, latent_id: str, item: Prepared) -> None:
        if item.nbytes > self.max_bytes:
            return  # bigger than the whole cache: decoded again when needed
        with self._lock:
            old = self._items.pop(latent_id, None)
            if old is not None:
                self.size -= old.nbytes
            self._items[latent_id] = item
            self.size += item.nbytes
            while self.size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.size -= dropped.nbytes

    def drop(self, latent_id: str) -> None:
        with self._lock:
            old = self._items.pop(latent_id, None)
            if old is not None:
                self.size -= old.nbytes

    def get(self, latent_id: str) -> Prepared | None:
        with self._lock:
            item = self._items.get(latent_id)
            if item is not None:
                self._items.move_to_end(latent_id)  # used: the last to go
            return item
