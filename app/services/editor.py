"""What the routes call: encode uploads, edit, interpolate, queue optimised edits, jobs.

Each method validates against the model (attribute names) and the Settings (bounds),
talks to the engine and the store, and returns plain data for the route's schema.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from app.attributes import ORDER, describe
from app.services import faces
from app.services.engine import Engine
from app.services.errors import InvalidParameter, NotFound, NotReady
from app.services.images import decode_image, png_bytes
from app.services.store import Store, key
from app.settings import Settings
from models.editing import lerp, slerp
from worker.jobs import JobRecord, read_job, write_job
from worker.runner import JobRunner


def new_id() -> str:
    """128 random bits, URL-safe: unguessable, so ids double as capabilities."""
    return secrets.token_urlsafe(16)


@dataclass
class Encoded:
    latent_id: str
    z: list[float]
    face_box: tuple[int, int, int, int] | None
    faces_found: int
    aligned: np.ndarray
    reconstruction: np.ndarray | None  # G(z), when asked for


class Editor:
    def __init__(self, engine: Engine, store: Store, runner: JobRunner, settings: Settings) -> None:
        self.engine, self.store, self.runner, self.settings = engine, store, runner, settings

    # --- faces and latents --------------------------------------------------------------

    def encode_upload(self, data: bytes, face: int = 0, aligned: bool = False, reconstruct: bool = True) -> Encoded:
        photo = decode_image(data, self.settings.max_image_pixels)
        size = self.engine.image_size
        if aligned:
            crop, found = faces.whole_image_face(photo, size)
            n = 1
        else:
            found, n = faces.find_face(photo, size, face)
            crop = faces.align(photo, found, size)
        z = self.engine.encode(crop[None])[0]
        latent_id = self._save_latent(z, crop, found.matrix, photo_bytes=data)
        rec = self.engine.render(z[None])[0] if reconstruct else None
        return Encoded(latent_id, z.tolist(), None if aligned else found.box, n, crop, rec)

    def _save_latent(
        self, z: torch.Tensor, crop: np.ndarray, matrix: np.ndarray | None, photo_bytes: bytes | None
    ) -> str:
        latent_id = new_id()
        ttl = self.settings.latent_ttl_s
        record = {"z": z.tolist(), "matrix": None if matrix is None else matrix.tolist()}
        self.store.put(key("latent", latent_id), json.dumps(record).encode(), ttl)
        self.store.put(key("face", latent_id), png_bytes(crop), ttl)
        if photo_bytes is not None:
            self.store.put(key("photo", latent_id), photo_bytes, ttl)
        return latent_id

    def latent(self, latent_id: str) -> dict[str, Any]:
        raw = self.store.get(key("latent", latent_id))
        if raw is None:
            raise NotFound(f"unknown or expired latent id {latent_id!r}; encode the face again")
        return json.loads(raw)  # type: ignore[no-any-return]

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
        paste: bool,
        latent_id: str | None = None,
        upload: bytes | None = None,
        face: int = 0,
        aligned: bool = False,
    ) -> tuple[np.ndarray, str]:
        """The edited face (or the whole photo with it pasted back) and the id of the face edited.

        The face is an upload, encoded first, or an earlier latent id; edits are checked before
        any work is done.
        """
        self.check_edits(edits)
        if upload is not None:
            latent_id = self.encode_upload(upload, face, aligned, reconstruct=False).latent_id
        elif latent_id is None:
            raise InvalidParameter("send an image file or a latent_id")
        record = self.latent(latent_id)
        z = self.engine.edit_latent(torch.tensor(record["z"], dtype=torch.float32)[None], edits)
        edited = self.engine.render(z)[0]
        if not paste:
            return edited, latent_id
        photo_bytes = self.store.get(key("photo", latent_id))
        if photo_bytes is None or record["matrix"] is None:
            raise InvalidParameter("paste=true needs a face encoded from an uploaded photo (not a generated face)")
        photo = decode_image(photo_bytes, self.settings.max_image_pixels)
        return faces.paste(photo, edited, np.array(record["matrix"])), latent_id

    def interpolate(self, from_id: str, to_id: str, steps: int, method: str) -> np.ndarray:
        z0 = torch.tensor(self.latent(from_id)["z"], dtype=torch.float32)
        z1 = torch.tensor(self.latent(to_id)["z"], dtype=torch.float32)
        path = (slerp if method == "slerp" else lerp)(z0, z1, torch.linspace(0, 1, steps))
        return self.engine.render(path)

    def generate(self, seed: int, n: int) -> tuple[np.ndarray, list[str]]:
        z = torch.randn(n, self.engine.cfg.nz, generator=torch.Generator().manual_seed(seed))
        imgs = self.engine.render(z)
        ids = [self._save_latent(z[i], imgs[i], None, None) for i in range(n)]
        return imgs, ids

    def attributes(self) -> list[dict[str, Any]]:
        counts = self.engine.model.meta.get("attributes", {})
        return [
            {"name": n, "description": describe(n), **{k: counts.get(n, {}).get(k) for k in ("with", "without")}}
            for n in sorted(self.engine.attribute_names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
        ]  # most useful first

    # --- optimised edits as jobs --------------------------------------------------------

    def submit_optimized(self, params: dict[str, Any]) -> JobRecord:
        self.check_edits([(e["attribute"], e["strength"]) for e in params["edits"]])
        self.latent(params["latent_id"])
        if params.get("target_id"):
            self.latent(params["target_id"])
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
        job = read_job(self.store, job_id)
        if job is None:
            raise NotFound(f"unknown or expired job id {job_id!r}")
        return job

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
