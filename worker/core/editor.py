"""What the routes call: encode uploads, edit, interpolate, queue optimised edits, jobs.

Within one request data flows one way: an upload is decoded once, and the photo, the
aligned face and z stay in memory until the answer is encoded. The store receives only what
a later request needs (z, the aligned face with its validity mask, the photo's bytes) and is
read only by later requests.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from models.editing import RefineOptions, lerp, slerp
from worker.core import faces
from worker.core.attributes import ORDER, describe
from worker.core.engine import Engine
from worker.core.errors import InvalidParameter, NotFound, NotReady
from worker.core.images import Photo, decode_photo, encode_like, png_bytes
from worker.core.jobs import JobRecord, check_job, read_job, write_job
from worker.core.runner import JobRunner
from worker.core.settings import CoreSettings
from worker.core.store import Store, key

Blend = Literal["change", "generated"]


def new_id() -> str:
    """128 random bits, URL-safe: unguessable, so ids double as capabilities."""
    return secrets.token_urlsafe(16)


@dataclass
class Encoded:
    """One face as a request knows it: its latent, its crop, and the photo it came from."""

    latent_id: str
    z: torch.Tensor  # (nz,) refined latent
    aligned: faces.Aligned | None  # None for generated faces
    photo: Photo | None = None  # decoded upload, None when the request did not need it
    grayscale: bool = False
    face_box: tuple[int, int, int, int] | None = None
    faces_found: int = 1
    inversion: dict[str, float] = field(default_factory=dict)


@dataclass
class Rendered:
    data: bytes
    media_type: str
    latent_id: str
    pasted: bool


class Editor:
    def __init__(self, engine: Engine, store: Store, runner: JobRunner, settings: CoreSettings) -> None:
        self.engine, self.store, self.runner, self.settings = engine, store, runner, settings
        # Whole photos are the memory-heavy part of a request: a few at a time, the rest wait.
        self._photos = threading.BoundedSemaphore(settings.photo_concurrency)

    def _decode(self, data: bytes) -> Photo:
        return decode_photo(data, self.settings.max_image_pixels, self.settings.max_photo_pixels)

    # --- faces and latents --------------------------------------------------------------

    def encode_upload(self, data: bytes, face: int = 0, aligned: bool = False, refine: bool = True) -> Encoded:
        """Decode, find and align the face, invert it (E(x), then refined), and store it."""
        size = self.engine.image_size
        with self._photos:
            photo = self._decode(data)
            if aligned:
                crop, box, n = faces.whole_image(photo.pixels, size), None, 1
            else:
                found, n = faces.find_face(photo.pixels, face)
                crop, box = faces.align(photo.pixels, found, size, self.engine.geometry), found.box
        z = self.engine.encode(crop.pixels[None])[0]
        stats: dict[str, float] = {}
        if refine and self.settings.refine_steps:
            opts = RefineOptions(steps=self.settings.refine_steps, budget_s=self.settings.refine_budget_ms / 1000)
            z_opt, stats = self.engine.refine(crop.pixels, crop.valid, z[None], opts)
            z = z_opt[0]
        enc = Encoded(new_id(), z, crop, photo, faces.is_grayscale(photo.pixels), box, n, stats)
        self._save(enc, data)
        return enc

    def _save(self, enc: Encoded, photo_bytes: bytes | None) -> None:
        ttl = self.settings.latent_ttl_s
        record: dict[str, Any] = {"z": enc.z.tolist(), "grayscale": enc.grayscale}
        if enc.aligned is not None:
            record["matrix"] = enc.aligned.matrix.tolist()
            rgba = np.dstack([enc.aligned.pixels, enc.aligned.valid.astype(np.uint8) * 255])
            self.store.put(key("face", enc.latent_id), png_bytes(rgba), ttl)
        self.store.put(key("latent", enc.latent_id), json.dumps(record).encode(), ttl)
        if photo_bytes is not None:
            self.store.put(key("photo", enc.latent_id), photo_bytes, ttl)

    def load(self, latent_id: str, with_photo: bool = False) -> Encoded:
        """A face stored by an earlier request; its photo decoded only when asked for."""
        raw = self.store.get(key("latent", latent_id))
        if raw is None:
            raise NotFound(f"unknown or expired latent id {latent_id!r}; encode the face again")
        record = json.loads(raw)
        enc = Encoded(latent_id, torch.tensor(record["z"], dtype=torch.float32), None, grayscale=record["grayscale"])
        face_png = self.store.get(key("face", latent_id)) if "matrix" in record else None
        if face_png is not None:
            rgba = np.asarray(Image.open(io.BytesIO(face_png)).convert("RGBA"))
            enc.aligned = faces.Aligned(rgba[..., :3].copy(), rgba[..., 3] > 127, np.array(record["matrix"]))
        if with_photo:
            photo_bytes = self.store.get(key("photo", latent_id))
            if photo_bytes is not None:
                with self._photos:
                    enc.photo = self._decode(photo_bytes)
        return enc

    # --- edits --------------------------------------------------------------------------

    def check_edits(self, edits: list[tuple[str, float]]) -> None:
        names = self.engine.attribute_names
        unknown = [a for a, _ in edits if a not in names]
        if unknown:
            raise InvalidParameter(f"unknown attribute(s) {unknown}; valid names: {names}", valid=names)
        if len(edits) > self.settings.max_edits:
            raise InvalidParameter(f"at most {self.settings.max_edits} attributes per edit")
        bound = self.settings.max_strength
        bad = [(a, s) for a, s in edits if not -bound <= s <= bound or not np.isfinite(s)]
        if bad:
            raise InvalidParameter(f"strength must be within [-{bound}, {bound}], got {bad}")

    def edit(
        self,
        edits: list[tuple[str, float]],
        paste: bool | None = None,
        blend: Blend = "change",
        latent_id: str | None = None,
        upload: bytes | None = None,
        face: int = 0,
        aligned: bool = False,
    ) -> Rendered:
        """The edited face, or by default the user's whole photo with the edit applied.

        The face is an upload, encoded first (and kept in memory for the rest of the request),
        or an earlier latent id; edits are checked before any work is done. `paste=None`
        answers the whole photo when the face came from one.
        """
        self.check_edits(edits)
        if upload is not None:
            enc = self.encode_upload(upload, face, aligned)
        elif latent_id is not None:
            enc = self.load(latent_id, with_photo=paste is not False)
        else:
            raise InvalidParameter("send an image file or a latent_id")
        if paste is None:
            paste = enc.photo is not None
        z_edit = self.engine.edit_latent(enc.z[None], edits)
        if not paste:
            return Rendered(png_bytes(self.engine.render(z_edit)[0]), "image/png", enc.latent_id, False)
        if enc.photo is None or enc.aligned is None:
            raise InvalidParameter("paste=true needs a face encoded from an uploaded photo (not a generated face)")
        with self._photos:
            image = self.apply_to_photo(enc, z_edit, blend)
            data, media_type = encode_like(image, enc.photo)
        return Rendered(data, media_type, enc.latent_id, True)

    def apply_to_photo(self, enc: Encoded, z_edit: torch.Tensor, blend: Blend) -> np.ndarray:
        """The photo with the edit: its own pixels + mask * (G(z + edit) - G(z)) (the default),
        or the generated face blended over it (`blend="generated"`)."""
        assert enc.photo is not None and enc.aligned is not None
        if blend == "generated":
            face_img = self.engine.render(z_edit)[0]
            return faces.paste_face(enc.photo.pixels, face_img, enc.aligned, enc.grayscale)
        both = self.engine.render(torch.cat([enc.z[None], z_edit]))  # one pass for the two renders
        delta = both[1].astype(np.float32) - both[0].astype(np.float32)
        mask = faces.change_mask(delta, enc.aligned.valid)
        return faces.apply_change(enc.photo.pixels, delta, mask, enc.aligned.matrix, enc.grayscale)

    def interpolate(self, from_id: str, to_id: str, steps: int, method: str) -> np.ndarray:
        z0, z1 = self.load(from_id).z, self.load(to_id).z
        path = (slerp if method == "slerp" else lerp)(z0, z1, torch.linspace(0, 1, steps))
        return self.engine.render(path)

    def generate(self, seed: int, n: int) -> tuple[np.ndarray, list[str]]:
        z = torch.randn(n, self.engine.cfg.nz, generator=torch.Generator().manual_seed(seed))
        imgs = self.engine.render(z)
        encs = [Encoded(new_id(), z[i], None) for i in range(n)]
        for enc in encs:
            self._save(enc, None)
        return imgs, [e.latent_id for e in encs]

    def attributes(self) -> list[dict[str, Any]]:
        counts = self.engine.model.meta.get("attributes", {})
        return [
            {"name": n, "description": describe(n), **{k: counts.get(n, {}).get(k) for k in ("with", "without")}}
            for n in sorted(self.engine.attribute_names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
        ]  # most useful first

    # --- optimised edits as jobs --------------------------------------------------------

    def submit_optimized(self, params: dict[str, Any]) -> JobRecord:
        self.check_edits([(e["attribute"], e["strength"]) for e in params["edits"]])
        for latent_id in (params["latent_id"], params.get("target_id")):
            if latent_id and self.store.get(key("latent", latent_id)) is None:
                raise NotFound(f"unknown or expired latent id {latent_id!r}; encode the face again")
        now = time.time()
        job = JobRecord(id=new_id(), steps=params["steps"], created_at=now, updated_at=now, params=params)
        write_job(self.store, job, self.settings.result_ttl_s)
        try:
            self.runner.submit(job.id)
        except Exception:
            self.store.delete(key("job", job.id))  # not queued: leave no job that never runs
            raise
        return job

    def job(self, job_id: str) -> JobRecord:
        """The job as it is now: an orphaned one (its worker died) is run again or failed here."""
        job = read_job(self.store, job_id)
        if job is None:
            raise NotFound(f"unknown or expired job id {job_id!r}")
        return check_job(self.store, job, self.settings, self.runner.requeue)

    def job_result(self, job_id: str) -> bytes:
        job = self.job(job_id)
        if job.status == "failed":
            raise NotReady(f"job {job_id} failed: {job.error}", status=job.status)
        png = self.store.get(key("result", job_id))
        if job.status != "succeeded" or png is None:
            raise NotReady(
                f"job {job_id} is {job.status}; poll /jobs/{job_id} until it has succeeded", status=job.status
            )
        return png
