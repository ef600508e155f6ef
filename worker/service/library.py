"""The faces the service keeps: uploads inverted and stored, faces loaded back, new ones generated.

A request that needs a face's whole photo opens it (`uploaded`, `stored`) for as long as it
holds it: opening reserves the photo's bytes in the process's `PhotoBudget` before anything is
decoded, and closing gives them back. The decoded photo and G(z) of every encoded face are kept
in the `FaceCache`, so an edit of a stored face decodes nothing and renders one face.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from models.latent_math import RefineOptions
from models.networks import sample_latents
from worker.pipeline.editnet import EditNetEngine, prepare_photo
from worker.pipeline.encoded import Encoded, new_id
from worker.pipeline.engines import AnyEngine, latent_engine
from worker.pipeline.images import Photo, decode_photo
from worker.pipeline.inversion import invert_photo
from worker.service.budget import COPIES, PhotoBudget, photo_cost
from worker.service.cache import FaceCache, Prepared
from worker.service.latents import load_face, save_face
from worker.service.settings import CoreSettings
from worker.service.store import Kind, Store, key

FACE_KEYS: tuple[Kind, ...] = ("latent", "face", "photo")  # what the store holds of an encoded face


def decode_upload(data: bytes, settings: CoreSettings) -> Photo:
    """An upload decoded within the service's limits: its pixels checked, big photos scaled."""
    return decode_photo(data, settings.max_image_pixels, settings.max_photo_pixels)


class FaceLibrary:
    """Every face a later request may name by its latent id."""

    def __init__(
        self, engine: AnyEngine, store: Store, settings: CoreSettings, budget: PhotoBudget, cache: FaceCache
    ) -> None:
        self.engine, self.store, self.settings, self.budget, self.cache = engine, store, settings, budget, cache

    def refinement(self, refine: bool) -> RefineOptions | None:
        """The refinement `/encode` runs (None: E(x) alone)."""
        s = self.settings
        if not (refine and s.refine_steps):
            return None
        return RefineOptions(steps=s.refine_steps, budget_s=s.refine_budget_ms / 1000)

    @contextmanager
    def uploaded(
        self,
        data: bytes,
        *,
        face: int = 0,
        aligned: bool = False,
        refine: RefineOptions | None = None,
        keep: bool = True,
    ) -> Iterator[Encoded]:
        """The upload decoded, its face found, aligned and inverted (E(x), then refined with
        `refine`), and, with `keep`, stored for later requests (latent, crop, the photo's bytes)
        and cached decoded. Its bytes are reserved while the block runs."""
        with self.budget.reserve(photo_cost(data, self.settings.max_photo_pixels)):
            photo = decode_upload(data, self.settings)
            if isinstance(self.engine, EditNetEngine):  # nothing to invert: the editor reads the crop itself
                enc = prepare_photo(self.engine, photo, face=face, aligned=aligned)
            else:
                enc = invert_photo(self.engine, photo, face=face, aligned=aligned, refine=refine)
            if keep:
                save_face(self.store, enc, data, self.settings.latent_ttl_s)
                enc.base = self.reconstruction(enc)
                self.cache.put(enc.latent_id, Prepared(photo, enc.base))
            yield enc

    def encode(self, data: bytes, *, face: int = 0, aligned: bool = False, refine: bool = True) -> Encoded:
        """`uploaded` with the service's refinement, for a request that needs no photo after."""
        with self.uploaded(data, face=face, aligned=aligned, refine=self.refinement(refine)) as enc:
            return enc

    @contextmanager
    def stored(self, latent_id: str, *, with_photo: bool = False) -> Iterator[Encoded]:
        """A face stored by an earlier request; with `with_photo`, its photo decoded (from the
        cache, else from the store's bytes), the photo's bytes reserved while the block runs."""
        enc = load_face(self.store, latent_id)  # the store says whether the face exists
        # In use: kept latent_ttl_s after its last use (Redis's TTL does not restart on a read)
        self.store.touch([key(k, latent_id) for k in FACE_KEYS], self.settings.latent_ttl_s)
        if not with_photo or enc.aligned is None:
            yield enc
            return
        data = self.store.get(key("photo", latent_id))  # read even on a hit: the store's LRU sees the use
        if data is None:  # evicted before the rest of its face: it edits as a crop only
            yield enc
            return
        cached = self.cache.get(latent_id)
        if cached is not None:
            enc.photo, enc.base = cached.photo, cached.base
            with self.budget.reserve(COPIES * cached.photo.pixels.nbytes):
                yield enc
            return
        with self.budget.reserve(photo_cost(data, self.settings.max_photo_pixels)):
            enc.photo = decode_upload(data, self.settings)
            enc.base = self.reconstruction(enc)
            self.cache.put(latent_id, Prepared(enc.photo, enc.base))
            yield enc

    def forget(self, latent_id: str) -> bool:
        """Delete everything this process and the store hold of the face: its z, aligned crop and
        photo bytes, and its decoded photo and G(z) in the cache. False if the store had none of it."""
        found = any(self.store.get(key(k, latent_id)) is not None for k in FACE_KEYS)
        for k in FACE_KEYS:
            self.store.delete(key(k, latent_id))
        self.cache.drop(latent_id)
        return found

    def reconstruction(self, enc: Encoded) -> np.ndarray:
        """G(z) of a face: (S, S, 3) uint8; for the editor, which has no latent, the crop itself."""
        if enc.base is not None:
            return enc.base
        if isinstance(self.engine, EditNetEngine):
            assert enc.aligned is not None
            return enc.aligned.pixels
        return self.engine.render(enc.z[None])[0]

    def generate(self, seed: int, n: int) -> tuple[np.ndarray, list[str]]:
        """n new faces G(z), z from the seed's prior, each stored under a new latent id."""
        engine = latent_engine(self.engine, "generating faces")
        z = sample_latents(engine.model.G, n, torch.Generator().manual_seed(seed)).cpu()
        imgs = engine.render(z)
        encs = [Encoded(new_id(), z[i], None) for i in range(n)]
        for enc in encs:
            save_face(self.store, enc, None, self.settings.latent_ttl_s)
        return imgs, [e.latent_id for e in encs]
