"""The loaded latent model (G, E and the attribute directions), its forward passes batched
across concurrent requests (worker.pipeline.batcher): `encode` faces to latents, `render`
latents to faces, `refine` a latent towards a face.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from models.checkpoint import FaceModel, load_checkpoint
from models.edits import Direction
from models.geometry import FaceGeometry
from models.latent_math import RefineOptions, RefineStats, refine_latent
from models.pixels import from_uint8, to_uint8
from worker.pipeline.batcher import Batcher


class Engine:
    def __init__(self, model: FaceModel, batch_max: int = 16, batch_wait_ms: float = 2.0) -> None:
        if model.E is None or model.directions is None:
            raise ValueError("the service needs a checkpoint with an encoder and attribute directions")
        self.model = model.eval()
        self.cfg = model.cfg
        self.device = next(model.G.parameters()).device
        self._batcher = Batcher(self._forward, ("encode", "render"), batch_max, batch_wait_ms)

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu", batch_max: int = 16, batch_wait_ms: float = 2.0) -> Engine:
        return cls(load_checkpoint(path, device), batch_max, batch_wait_ms)

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    @property
    def geometry(self) -> FaceGeometry:
        return self.model.geometry

    @property
    def attribute_names(self) -> list[str]:
        return self.model.attribute_names

    @property
    def default_strength(self) -> float:
        return self.model.typed_meta.default_strength

    def direction(self, name: str) -> Tensor:
        """The built-in direction (nz,) of a known attribute name, on the CPU."""
        return self.model.direction(name).cpu()

    @property
    def typical_length(self) -> float:
        """The median length of the built-in directions (strength 1 of a typical edit)."""
        assert self.model.directions is not None
        norms = self.model.directions.norm(dim=1)
        return float(norms[norms > 0].median()) if bool((norms > 0).any()) else 1.0

    def attribute(self, name: str) -> Direction:
        """A built-in attribute's edit (direction and calibration); KeyError if unknown."""
        return self.model.attribute(name)

    # --- the two forward passes -------------------------------------------------------

    def encode(self, faces: np.ndarray) -> Tensor:
        """Aligned faces (B, S, S, 3) uint8 -> latents (B, nz) on the CPU."""
        return self._batcher.submit("encode", torch.from_numpy(np.ascontiguousarray(faces)))

    def render(self, z: Tensor) -> np.ndarray:
        """Latents (B, nz) -> faces (B, S, S, 3) uint8."""
        return to_uint8(self._batcher.submit("render", z.float().cpu())).numpy()

    def refine(self, face: np.ndarray, valid: np.ndarray, z: Tensor, opts: RefineOptions) -> tuple[Tensor, RefineStats]:
        """E(x) refined towards one aligned face (S, S, 3) uint8 under its validity mask (S, S).

        Each optimiser step takes the forward-pass lock, so other requests' passes interleave.
        """
        x = from_uint8(torch.from_numpy(np.ascontiguousarray(face))[None])
        mask = torch.from_numpy(valid.astype(np.float32))[None, None]
        z_opt, stats = refine_latent(
            self.model.G, x.to(self.device), z.to(self.device), mask.to(self.device), opts, lambda: self._batcher.lock
        )
        return z_opt.cpu(), stats

    @torch.inference_mode()
    def _forward(self, kind: str, data: tuple[Tensor, ...]) -> Tensor:
        x = data[0].to(self.device)
        if kind == "encode":
            assert self.model.E is not None
            return self.model.E(from_uint8(x)).cpu()
        return self.model.G(x).cpu()

    def warm_up(self) -> None:
        """One of each pass (encode, render, two refinement steps) before the first request: the
        first optimiser step imports parts of torch lazily (seconds, holding the GIL, measured
        with py-spy), which would otherwise stall the first users and the event loop."""
        size = self.image_size
        face = np.full((size, size, 3), 128, np.uint8)
        z = self.encode(face[None])
        self.render(z)
        self.refine(face, np.ones((size, size), bool), z, RefineOptions(steps=2, patience=2))

    def close(self) -> None:
        self._batcher.close()
