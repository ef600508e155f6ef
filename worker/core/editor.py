"""What the routes call: encode uploads, edit, interpolate, queue optimised edits, jobs.

Within one request data flows one way: an upload is decoded once, and the photo, the
aligned face and z stay in memory until the answer is encoded. The store receives only what
a later request needs (z, the aligned face with its validity mask, the photo's bytes) and is
read only by later requests.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from models.editing import RefineOptions, lerp, orthogonalize, slerp
from models.networks import sample_latents
from worker.core import faces
from worker.core.attributes import ORDER, describe
from worker.core.engine import Engine
from worker.core.errors import InvalidParameter, NotFound, NotReady, ServiceError
from worker.core.images import Photo, decode_image, decode_upload, encode_like, png_bytes
from worker.core.jobs import JobRecord, check_job, read_job, write_job
from worker.core.latents import Blend, Encoded, apply_to_photo, load_face, new_id, save_face
from worker.core.runner import JobRunner
from worker.core.settings import CoreSettings
from worker.core.store import Store, key

CUSTOM_PREFIX = "custom-"  # ids of custom attributes, usable wherever an attribute name is
CUSTOM_EXAMPLES = (3, 12)  # photos with, and without, the look
CUSTOM_AREA = faces.Area(focus=(0.1, 0.35))  # the whole head, a middle focus: the look changes, the person stays


@dataclass
class Rendered:
    """An answer image: its bytes and media type, the face's latent id, whether it is the photo."""

    data: bytes
    media_type: str
    latent_id: str
    pasted: bool


class Editor:
    def __init__(self, engine: Engine, store: Store, runner: JobRunner, settings: CoreSettings) -> None:
        self.engine, self.store, self.runner, self.settings = engine, store, runner, settings
        # Whole photos are the memory-heavy part of a request: a few at a time, the rest wait.
        self._photos = threading.BoundedSemaphore(settings.photo_concurrency)

    # --- faces and latents --------------------------------------------------------------

    def encode_upload(self, data: bytes, face: int = 0, aligned: bool = False, refine: bool = True) -> Encoded:
        """Decode, find and align the face, invert it (E(x), then refined), and store it."""
        opts = None
        if refine and self.settings.refine_steps:
            opts = RefineOptions(steps=self.settings.refine_steps, budget_s=self.settings.refine_budget_ms / 1000)
        enc = self._invert(data, face, aligned, opts)
        save_face(self.store, enc, data, self.settings.latent_ttl_s)
        return enc

    def _invert(self, data: bytes, face: int = 0, aligned: bool = False, opts: RefineOptions | None = None) -> Encoded:
        """The upload's face found, aligned and inverted: E(x), then refined with `opts`; not stored."""
        size = self.engine.image_size
        with self._photos:
            photo = decode_upload(data, self.settings)
            if aligned:
                crop, box, boxes = faces.whole_image(photo.pixels, size), None, []
            else:
                found, every = faces.find_face(photo.pixels, face)
                crop, box = faces.align(photo.pixels, found, size, self.engine.geometry), found.box
                boxes = [f.box for f in every]
        z = self.engine.encode(crop.pixels[None])[0]
        stats: dict[str, float] = {}
        if opts is not None:
            z_opt, stats = self.engine.refine(crop.pixels, crop.valid, z[None], opts)
            z = z_opt[0]
        return Encoded(new_id(), z, crop, photo, faces.is_grayscale(photo.pixels), box, boxes, stats)

    def load(self, latent_id: str, with_photo: bool = False) -> Encoded:
        """A face stored by an earlier request; its photo decoded only when asked for."""
        return load_face(self.store, latent_id, self._decode_limited if with_photo else None)

    def _decode_limited(self, data: bytes) -> Photo:
        with self._photos:
            return decode_upload(data, self.settings)

    # --- edits --------------------------------------------------------------------------

    def check_edits(self, edits: list[tuple[str, float]], custom: bool = True) -> None:
        """Names known (built-in, or custom ids when `custom`), bounded count and strengths."""
        names = self.engine.attribute_names
        unknown = [a for a, _ in edits if a not in names and not (custom and a.startswith(CUSTOM_PREFIX))]
        if unknown:
            hint = " or a custom attribute id" if custom else " (custom attributes work in /edit only)"
            raise InvalidParameter(f"unknown attribute(s) {unknown}; valid names: {names}{hint}", valid=names)
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
        refine: bool = True,
    ) -> Rendered:
        """The edited face, or by default the user's whole photo with the edit applied.

        The face is an upload, encoded first (and kept in memory for the rest of the request),
        or an earlier latent id; edits are checked before any work is done. `paste=None`
        answers the whole photo when the face came from one.
        """
        self.check_edits(edits)
        if upload is not None:
            enc = self.encode_upload(upload, face, aligned, refine)
        elif latent_id is not None:
            enc = self.load(latent_id, with_photo=paste is not False)
        else:
            raise InvalidParameter("send an image file or a latent_id")
        if paste is None:
            paste = enc.photo is not None
        step, area = self._resolve(edits)
        z_edit = enc.z[None] + step
        if not paste:
            return Rendered(png_bytes(self.engine.render(z_edit)[0]), "image/png", enc.latent_id, False)
        if enc.photo is None or enc.aligned is None:
            raise InvalidParameter("paste=true needs a face encoded from an uploaded photo (not a generated face)")
        with self._photos:
            image = apply_to_photo(self.engine, enc, z_edit, blend, area)
            data, media_type = encode_like(image, enc.photo)
        return Rendered(data, media_type, enc.latent_id, True)

    def _resolve(self, edits: list[tuple[str, float]]) -> tuple[torch.Tensor, faces.Area]:
        """The summed latent step (nz,) of checked edits, built-in or custom, and where they act."""
        step, areas = torch.zeros(self.engine.cfg.latent_size), []
        for a, s in edits:
            if a.startswith(CUSTOM_PREFIX):
                custom = self.custom_attribute(a)
                step += s * torch.tensor(custom["direction"], dtype=torch.float32)
                area = faces.Area.from_json(custom)
            else:
                step += self.engine.step(a, s)
                area = self.engine.area(a)
            if s != 0:
                areas.append(area)
        return step, faces.union(areas)

    # --- custom attributes ----------------------------------------------------------------

    def create_attribute(
        self, name: str, with_photos: list[bytes], without_photos: list[bytes], keep: list[str]
    ) -> dict[str, Any]:
        """A new direction from a few photos with and without a look: the difference of their
        mean latents, orthogonalised against the built-in attributes in `keep`, as long as a
        typical calibrated built-in direction. Stored under a new id with its TTL."""
        lo, hi = CUSTOM_EXAMPLES
        for label, group in (("with", with_photos), ("without", without_photos)):
            if not lo <= len(group) <= hi:
                raise InvalidParameter(f"send {lo} to {hi} photos {label} the look, got {len(group)}")
        unknown = [k for k in keep if k not in self.engine.attribute_names]
        if unknown:
            raise InvalidParameter(f"keep: unknown attribute(s) {unknown}", valid=self.engine.attribute_names)
        latents = {}
        opts = RefineOptions(steps=20, budget_s=0.3)  # many faces per request: a shorter refinement
        for label, group in (("with", with_photos), ("without", without_photos)):
            zs = []
            for i, data in enumerate(group):
                try:
                    zs.append(self._invert(data, opts=opts).z)
                except ServiceError as e:
                    raise type(e)(f"photo {i + 1} {label} the look: {e.message}", **e.detail) from e
            latents[label] = torch.stack(zs)
        v = latents["with"].mean(0) - latents["without"].mean(0)
        v = orthogonalize(v, torch.stack([self.engine.direction(k) for k in keep]) if keep else torch.zeros(0, len(v)))
        if float(v.norm()) == 0:
            raise InvalidParameter(
                "the photos with and without the look encode to the same place; use clearer examples"
            )
        record = {
            "id": CUSTOM_PREFIX + new_id(),
            "name": name,
            "direction": (v / v.norm() * self.engine.typical_length).tolist(),
            **CUSTOM_AREA.to_json(),
            "keep": keep,
            "faces_with": len(with_photos),
            "faces_without": len(without_photos),
            "expires_in_s": self.settings.custom_attribute_ttl_s or self.settings.latent_ttl_s,
        }
        self.store.put(key("attribute", record["id"]), json.dumps(record).encode(), record["expires_in_s"])
        return record

    def custom_attribute(self, attribute_id: str) -> dict[str, Any]:
        raw = self.store.get(key("attribute", attribute_id))
        if raw is None:
            raise NotFound(f"unknown or expired custom attribute {attribute_id!r}; create it again")
        return json.loads(raw)  # type: ignore[no-any-return]

    def interpolate(self, from_id: str, to_id: str, steps: int, method: str) -> np.ndarray:
        z0, z1 = self.load(from_id).z, self.load(to_id).z
        path = (slerp if method == "slerp" else lerp)(z0, z1, torch.linspace(0, 1, steps))
        return self.engine.render(path)

    def generate(self, seed: int, n: int) -> tuple[np.ndarray, list[str]]:
        z = sample_latents(self.engine.model.G, n, torch.Generator().manual_seed(seed)).cpu()
        imgs = self.engine.render(z)
        encs = [Encoded(new_id(), z[i], None) for i in range(n)]
        for enc in encs:
            save_face(self.store, enc, None, self.settings.latent_ttl_s)
        return imgs, [e.latent_id for e in encs]

    def attributes(self) -> list[dict[str, Any]]:
        """Each attribute: what it does, its training counts, where it acts and what strength 1
        did on held-out faces when it was calibrated."""
        counts = self.engine.model.meta.get("attributes", {})
        return [
            {
                "name": n,
                "description": describe(n),
                **{k: counts.get(n, {}).get(k) for k in ("with", "without")},
                "regions": list(self.engine.area(n).regions),
                **{k: self.engine.model.calibration(n).get(k) for k in ("reached", "same_person")},
            }
            for n in sorted(self.engine.attribute_names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
        ]  # most useful first

    # --- optimised edits as jobs --------------------------------------------------------

    def submit_optimized(
        self, params: dict[str, Any], strokes: bytes | None = None, mask: bytes | None = None
    ) -> JobRecord:
        """Queue an optimised edit; with brush `strokes` (an image) and their `mask` (an image of
        the same size: painted where not black), towards the strokes under the mask (iGAN)."""
        self.check_edits([(e["attribute"], e["strength"]) for e in params["edits"]], custom=False)
        if self.engine.model.D is None and params["lambda2"] > 0:
            raise InvalidParameter(
                f"this model ({self.engine.cfg.family}) has no image discriminator, so the optimised edit has no "
                "realism term: send lambda2=0",
                family=self.engine.cfg.family,
            )
        records = {}
        for latent_id in (params["latent_id"], params.get("target_id")):
            if latent_id is None:
                continue
            raw = self.store.get(key("latent", latent_id))
            if raw is None:
                raise NotFound(f"unknown or expired latent id {latent_id!r}; encode the face again")
            records[latent_id] = json.loads(raw)
        target = params.get("target_id") or params["latent_id"]
        if "matrix" not in records[target]:  # refused now rather than accepted and failed in the queue
            raise InvalidParameter(
                f"latent {target!r} is a generated face: it has no photo to match. Send target_id, an encoded face"
            )
        painted = self._strokes(strokes, mask) if strokes is not None or mask is not None else None
        now = time.time()
        job = JobRecord(id=new_id(), steps=params["steps"], created_at=now, updated_at=now, params=params)
        ttl = self.settings.result_ttl_s
        if painted is not None:
            self.store.put(key("strokes", job.id), painted, ttl)
        write_job(self.store, job, ttl)
        try:
            self.runner.submit(job.id)
        except Exception:
            self.store.delete(key("job", job.id))  # not queued: leave no job that never runs
            raise
        return job

    def _strokes(self, strokes: bytes | None, mask: bytes | None) -> bytes:
        """Strokes and mask as one RGBA PNG at the model's crop size (alpha = the mask)."""
        if strokes is None or mask is None:
            raise InvalidParameter("brush edits need both `strokes` and `mask`")
        limit = 4096 * 4096
        rgb, m = decode_image(strokes, limit), decode_image(mask, limit)
        if rgb.shape != m.shape:
            raise InvalidParameter(
                f"strokes ({rgb.shape[1]}x{rgb.shape[0]}) and mask ({m.shape[1]}x{m.shape[0]}) must have the same size"
            )
        alpha = (m.max(2) > 127).astype(np.uint8) * 255
        if not alpha.any():
            raise InvalidParameter("the mask is empty: paint where the strokes should apply")
        size = self.engine.image_size
        rgba = Image.fromarray(np.dstack([rgb, alpha])).resize((size, size), Image.Resampling.BOX)
        return png_bytes(np.asarray(rgba))

    def job(self, job_id: str) -> JobRecord:
        """The job as it is now: an orphaned one (its worker died) is run again or failed here."""
        job = read_job(self.store, job_id)
        if job is None:
            raise NotFound(f"unknown or expired job id {job_id!r}")
        return check_job(self.store, job, self.settings, self.runner.requeue)

    def job_result(self, job_id: str) -> bytes:
        """The result image (the user's photo in its format, or a 64 px PNG face)."""
        job = self.job(job_id)
        if job.status == "failed":
            raise NotReady(f"job {job_id} failed: {job.error}", status=job.status)
        data = self.store.get(key("result", job_id))
        if job.status != "succeeded" or data is None:
            raise NotReady(
                f"job {job_id} is {job.status}; poll /jobs/{job_id} until it has succeeded", status=job.status
            )
        return data
