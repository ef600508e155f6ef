"""The loaded face model, with concurrent forward passes merged into one batch.

Requests call `encode` / `render` from any thread; a single batching thread collects what
is queued (waiting up to `batch_wait_ms` for callers already on their way, never when a
request is alone), runs one forward pass per kind for up to `batch_max` rows, and hands
each caller its rows. With batch_wait_ms = 0 calls run directly under a lock.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from models.checkpoint import FaceModel, load_checkpoint
from models.edits import Direction
from models.geometry import FaceGeometry
from models.latent_math import RefineOptions, RefineStats, refine_latent
from models.pixels import from_uint8, to_uint8

_STOP = object()


@dataclass
class _Request:
    kind: str  # "encode": faces (B, S, S, 3) uint8 -> z; "render": z (B, nz) -> images
    data: Tensor
    future: Future[Tensor] = field(default_factory=Future)


class Engine:
    def __init__(self, model: FaceModel, batch_max: int = 16, batch_wait_ms: float = 2.0) -> None:
        if model.E is None or model.directions is None:
            raise ValueError("the service needs a checkpoint with an encoder and attribute directions")
        self.model = model.eval()
        self.cfg = model.cfg
        self.device = next(model.G.parameters()).device
        self.batch_max, self.wait_s = batch_max, batch_wait_ms / 1000
        self._lock = threading.Lock()  # one forward pass at a time: the CPU threads are shared
        self._queue: queue.Queue[object] = queue.Queue()
        self._waiting = 0  # callers inside _submit: queued or being computed
        self._waiting_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if self.wait_s > 0:
            self._thread = threading.Thread(target=self._loop, name="engine-batcher", daemon=True)
            self._thread.start()

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
        return self._submit("encode", torch.from_numpy(np.ascontiguousarray(faces)))

    def render(self, z: Tensor) -> np.ndarray:
        """Latents (B, nz) -> faces (B, S, S, 3) uint8."""
        return to_uint8(self._submit("render", z.float().cpu())).numpy()

    def refine(self, face: np.ndarray, valid: np.ndarray, z: Tensor, opts: RefineOptions) -> tuple[Tensor, RefineStats]:
        """E(x) refined towards one aligned face (S, S, 3) uint8 under its validity mask (S, S).

        Each optimiser step takes the forward-pass lock, so other requests' passes interleave.
        """
        x = from_uint8(torch.from_numpy(np.ascontiguousarray(face))[None])
        mask = torch.from_numpy(valid.astype(np.float32))[None, None]
        z_opt, stats = refine_latent(
            self.model.G, x.to(self.device), z.to(self.device), mask.to(self.device), opts, lambda: self._lock
        )
        return z_opt.cpu(), stats

    @torch.inference_mode()
    def _forward(self, kind: str, data: Tensor) -> Tensor:
        data = data.to(self.device)
        if kind == "encode":
            assert self.model.E is not None
            return self.model.E(from_uint8(data)).cpu()
        return self.model.G(data).cpu()

    def _submit(self, kind: str, data: Tensor) -> Tensor:
        if self._thread is None:
            with self._lock:
                return self._forward(kind, data)
        req = _Request(kind, data)
        with self._waiting_lock:
            self._waiting += 1
        try:
            self._queue.put(req)
            return req.future.result()
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            pending: list[_Request] = [first]  # type: ignore[list-item]
            rows = len(first.data)  # type: ignore[attr-defined]
            # Wait for company only while other callers are on their way: a lone request runs at
            # once, and requests that arrive during a forward pass form the next batch.
            deadline = time.monotonic() + self.wait_s
            while rows < self.batch_max and (self._waiting > len(pending) or not self._queue.empty()):
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                pending.append(item)  # type: ignore[arg-type]
                rows += len(item.data)  # type: ignore[attr-defined]
            for kind in ("encode", "render"):
                group = [r for r in pending if r.kind == kind]
                if not group:
                    continue
                try:
                    with self._lock:
                        out = self._forward(kind, torch.cat([r.data for r in group]))
                    for r, part in zip(group, out.split([len(r.data) for r in group]), strict=True):
                        r.future.set_result(part)
                except Exception as e:  # noqa: BLE001 - every caller must hear about it
                    for r in group:
                        r.future.set_exception(e)

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
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=5)
            self._thread = None
