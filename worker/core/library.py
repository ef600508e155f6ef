"""The faces the service keeps: uploads inverted and stored, faces loaded back, new ones generated."""

from __future__ import annotations

from contextlib import AbstractContextManager

import numpy as np
import torch

from models.editing import RefineOptions
from models.networks import sample_latents
from worker.core.engine import Engine
from worker.core.images import Photo, decode_upload
from worker.core.inversion import invert_photo
from worker.core.latents import Encoded, load_face, new_id, save_face
from worker.core.settings import CoreSettings
from worker.core.store import Store


class FaceLibrary:
    """Every face a later request may name by its latent id.

    `photos` bounds the whole photos being decoded at once (the memory-heavy part of a
    request); the editor holds it too while it pastes an edit into a photo.
    """

    def __init__(
        self, engine: Engine, store: Store, settings: CoreSettings, photos: AbstractContextManager[object]
    ) -> None:
        self.engine, self.store, self.settings, self.photos = engine, store, settings, photos

    def decode(self, data: bytes) -> Photo:
        with self.photos:
            return decode_upload(data, self.settings)

    def invert(
        self, data: bytes, *, face: int = 0, aligned: bool = False, refine: RefineOptions | None = None
    ) -> Encoded:
        """The upload's face found, aligned and inverted; not stored."""
        return invert_photo(self.engine, self.decode(data), face=face, aligned=aligned, refine=refine)

    def encode(self, data: bytes, *, face: int = 0, aligned: bool = False, refine: bool = True) -> Encoded:
        """Decode, find and align the face, invert it (E(x), refined unless `refine` is False),
        and store it (latent, crop, the photo's bytes) for later requests."""
        opts = None
        if refine and self.settings.refine_steps:
            opts = RefineOptions(steps=self.settings.refine_steps, budget_s=self.settings.refine_budget_ms / 1000)
        enc = self.invert(data, face=face, aligned=aligned, refine=opts)
        save_face(self.store, enc, data, self.settings.latent_ttl_s)
        return enc

    def load(self, latent_id: str, *, with_photo: bool = False) -> Encoded:
        """A face stored by an earlier request; its photo decoded only when asked for."""
        return load_face(self.store, latent_id, self.decode if with_photo else None)

    def reconstruction(self, enc: Encoded) -> np.ndarray:
        """G(z) of a face: (S, S, 3) uint8."""
        return self.engine.render(enc.z[None])[0]

    def generate(self, seed: int, n: int) -> tuple[np.ndarray, list[str]]:
        """n new faces G(z), z from the seed's prior, each stored under a new latent id."""
        z = sample_latents(self.engine.model.G, n, torch.Generator().manual_seed(seed)).cpu()
        imgs = self.engine.render(z)
        encs = [Encoded(new_id(), z[i], None) for i in range(n)]
        for enc in encs:
            save_face(self.store, enc, None, self.settings.latent_ttl_s)
        return imgs, [e.latent_id for e in encs]
