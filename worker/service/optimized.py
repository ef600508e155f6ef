"""Optimised edits (Zhu et al. 2016) as jobs: checked and queued (`OptimizedEditJobs`), and the
job's work (`run_optimized_edit`), which the queue's protocol (`worker.service.jobs.run_job`)
runs on the local pool or a Celery worker.

With a latent model the optimiser moves z; with the image-to-image editor it moves the edit's
difference vector and a coarse gain on its mask (models.editnet.EditAsGenerator), under the same
objective: close to the face (or to the brush strokes painted on it), near the asked edit, and
real to the model's discriminator."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from models.areas import HEAD
from models.editnet import EditAsGenerator
from models.edits import latent_edit
from models.latent_math import OptimizeOptions, optimize_latent
from models.pixels import from_uint8, to_uint8
from worker.pipeline.composite import edited_photo, paste
from worker.pipeline.editnet import EditNetEngine, bring_down, exposure_gain, lift, pasted_region
from worker.pipeline.encoded import Encoded, new_id
from worker.pipeline.engine import Engine
from worker.pipeline.engines import AnyEngine
from worker.pipeline.errors import InvalidParameter, NotFound, NotReady
from worker.pipeline.faces import Aligned
from worker.pipeline.images import Photo, decode_image, encode_like, png_bytes
from worker.service.editor import Editor
from worker.service.jobs import (
    CANCELLED_ERROR,
    JobRecord,
    OptimizedEditParams,
    Running,
    Status,
    end_job,
    read_job,
    run_job,
    write_job,
)
from worker.service.latents import load_face
from worker.service.library import decode_upload
from worker.service.runner import JobRunner
from worker.service.settings import CoreSettings
from worker.service.store import Store, key

STROKES_MAX_PIXELS = 4096 * 4096
PHOTO_DELETED_ERROR = "the photo this job edits was deleted at its owner's request"
FACE_GONE_ERROR = "the face this job edits is gone (deleted, or expired): encode the photo again"


class OptimizedEditJobs:
    """Optimised edits submitted, followed and fetched: the service's side of their jobs."""

    def __init__(
        self, engine: AnyEngine, store: Store, runner: JobRunner, editor: Editor, settings: CoreSettings
    ) -> None:
        self.engine, self.store, self.runner, self.editor, self.settings = engine, store, runner, editor, settings

    def submit(self, params: OptimizedEditParams, strokes: bytes | None = None, mask: bytes | None = None) -> JobRecord:
        """Queue an optimised edit; with brush `strokes` (an image) and their `mask` (an image of
        the same size: painted where not black), towards the strokes under the mask (iGAN).
        Everything the job would fail on is refused here, before it is queued."""
        self.editor.check(params.edits, custom=False)
        family = self.engine.family if isinstance(self.engine, EditNetEngine) else self.engine.cfg.family
        if self.engine.model.D is None and params.lambda2 > 0:
            raise InvalidParameter(
                f"this model ({family}) has no image discriminator, so the optimised edit has no "
                "realism term: send lambda2=0",
                family=family,
            )
        if isinstance(self.engine, EditNetEngine) and params.target_id not in (None, params.latent_id):
            raise InvalidParameter("the editor edits the face itself: target_id is for latent models", family=family)
        records = {}
        for latent_id in (params.latent_id, params.target_id):
            if latent_id is None:
                continue
            raw = self.store.get(key("latent", latent_id))
            if raw is None:
                raise NotFound(f"unknown or expired latent id {latent_id!r}; encode the face again")
            records[latent_id] = json.loads(raw)
        target = params.target_id or params.latent_id
        if "matrix" not in records[target]:
            raise InvalidParameter(
                f"latent {target!r} is a generated face: it has no photo to match. Send target_id, an encoded face"
            )
        painted = self._strokes(strokes, mask) if strokes is not None or mask is not None else None
        now = time.time()
        job = JobRecord(id=new_id(), steps=params.steps, created_at=now, updated_at=now, params=params)
        ttl = self.settings.result_ttl_s
        if painted is not None:
            self.store.put(key("strokes", job.id), painted, ttl)
        write_job(self.store, job, ttl)
        try:
            for latent_id in {params.latent_id, target}:
                self._used_by(latent_id, job.id)
            self.runner.submit(job.id)
        except Exception:
            self.store.delete(key("job", job.id))  # not queued: leave no job that never runs
            raise
        return job

    def _used_by(self, latent_id: str, job_id: str) -> None:
        """Add the job to the face's `uses:` list, so that deleting the face finds every job (and
        result) made from it. A compare-and-set: concurrent submits on one face all land. Kept as
        long as any of those jobs' records can live."""
        s = self.settings
        ttl = s.latent_ttl_s + s.result_ttl_s + s.job_time_limit_s * (s.job_max_retries + 1 + s.max_queue)
        k = key("uses", latent_id)
        while True:
            raw = self.store.get(k)
            ids = json.loads(raw) if raw else []
            if self.store.swap(k, raw, json.dumps([*ids, job_id]).encode(), ttl):
                return

    def cancel(self, job_id: str) -> JobRecord:
        """End the job as cancelled, whatever it is doing, its result and progress removed: a queued
        job never starts (its runner is told too: Celery revokes it), a running one stops at its
        next step. Cancelling an ended job removes its result."""
        job = end_job(self.store, job_id, "cancelled", CANCELLED_ERROR, self.settings.result_ttl_s)
        if job is None:
            raise NotFound(f"unknown or expired job id {job_id!r}")
        self.runner.cancel(job_id)
        return job

    def forget(self, latent_id: str) -> bool:
        """Fail every job made from the face (queued, running or ended) with the reason, its result
        removed and the id taken out of its record; False if no job used it."""
        k = key("uses", latent_id)
        raw = self.store.get(k)
        if raw is None:
            return False
        for job_id in json.loads(raw):
            job = read_job(self.store, job_id)
            if job is None:
                continue
            status: Status = "cancelled" if job.status == "cancelled" else "failed"
            end_job(self.store, job_id, status, PHOTO_DELETED_ERROR, self.settings.result_ttl_s, forget=latent_id)
            self.runner.cancel(job_id)
        self.store.delete(k)
        return True

    def _strokes(self, strokes: bytes | None, mask: bytes | None) -> bytes:
        """Strokes and mask as one RGBA PNG at the model's crop size (alpha = the mask)."""
        if strokes is None or mask is None:
            raise InvalidParameter("brush edits need both `strokes` and `mask`")
        rgb, m = decode_image(strokes, STROKES_MAX_PIXELS), decode_image(mask, STROKES_MAX_PIXELS)
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

    def status(self, job_id: str) -> JobRecord:
        """The job as its record says (orphans are re-queued by the API's JobSweeper, not here)."""
        job = read_job(self.store, job_id)
        if job is None:
            raise NotFound(f"unknown or expired job id {job_id!r}")
        return job

    def result(self, job_id: str) -> bytes:
        """The result image (the user's photo in its format, or a 64 px PNG face)."""
        job = self.status(job_id)
        if job.status in ("failed", "cancelled"):
            raise NotReady(f"job {job_id} {job.status}: {job.error}", status=job.status)
        data = self.store.get(key("result", job_id))
        if job.status != "succeeded" or data is None:
            raise NotReady(
                f"job {job_id} is {job.status}; poll /jobs/{job_id} until it has succeeded", status=job.status
            )
        return data


def run_optimized_edit(job_id: str, store: Store, engine: AnyEngine, settings: CoreSettings) -> None:
    """Run one delivery of an optimised-edit job (the Celery task and the local pool both call it)."""

    def work(running: Running) -> bytes:
        if isinstance(engine, EditNetEngine):
            return editor_optimized_edit(running, store, engine, settings)
        return optimized_edit(running, store, engine, settings)

    run_job(job_id, store, settings, work)


def optimized_edit(running: Running, store: Store, engine: Engine, settings: CoreSettings) -> bytes:
    """z* from z (+ attribute edits) towards the target face, or towards the brush strokes painted
    on it; the result is the user's photo with the change applied (in the photo's format), or the
    64 px face for a generated one."""
    p, job_id = running.job.params, running.job.id
    face = _face(running, store, p.latent_id, lambda data: decode_upload(data, settings))
    target_face = _face(running, store, p.target_id) if p.target_id else face
    if target_face.aligned is None:
        raise LookupError("the face to edit has no aligned crop (a generated face): give a target_id")
    change = latent_edit([(engine.attribute(a), s) for a, s in p.edits], engine.cfg.latent_size)
    z = face.z[None] + change.offset
    strokes = running.persist(lambda: store.get(key("strokes", job_id)))
    target, weights = _target(target_face.aligned, strokes)
    opts = OptimizeOptions(steps=p.steps, lr=p.lr, lambda1=p.lambda1, lambda2=p.lambda2)
    device = engine.device
    z_opt, _ = optimize_latent(
        engine.model.G,
        engine.model.D,
        z.to(device),
        target.to(device),
        opts,
        weights.to(device),
        lambda step, total, _objective: running.progress(step, total),
    )
    if face.photo is not None and face.aligned is not None:  # the change, applied to the user's photo
        # where the edits act, as calibrated (the whole head for brush strokes, which may be anywhere)
        area = HEAD if strokes is not None else change.area
        return encode_like(edited_photo(engine, face, z_opt.cpu(), area=area), face.photo)[0]
    return png_bytes(np.ascontiguousarray(engine.render(z_opt.cpu())[0]))


def editor_optimized_edit(running: Running, store: Store, engine: EditNetEngine, settings: CoreSettings) -> bytes:
    """The editor's difference vector and mask gain from the asked edits, towards the face (or the
    brush strokes painted on it) under D's realism; the user's photo with the change applied."""
    p, job_id = running.job.params, running.job.id
    face = _face(running, store, p.latent_id, lambda data: decode_upload(data, settings))
    if face.aligned is None:
        raise LookupError("the face to edit has no aligned crop")
    strokes = running.persist(lambda: store.get(key("strokes", job_id)))
    # a dim face is edited lifted, as `/edit` does
    gain = exposure_gain(face.aligned.pixels[None], face.aligned.valid[None])
    target, weights = _target(face.aligned, strokes, float(gain[0]))
    device = engine.device
    lifted = lift(face.aligned.pixels[None], gain)
    x = from_uint8(torch.from_numpy(lifted)).to(device)
    edit = EditAsGenerator(engine.model.G, x)
    opts = OptimizeOptions(steps=p.steps, lr=p.lr, lambda1=p.lambda1, lambda2=p.lambda2)
    z0 = edit.start(engine.difference(p.edits)[None].to(device))
    z_opt, _ = optimize_latent(
        edit, engine.model.D, z0, target.to(device), opts, weights.to(device),
        lambda step, total, _objective: running.progress(step, total),
    )  # fmt: skip
    with torch.no_grad():
        edited = bring_down(face.aligned.pixels[None], lifted, to_uint8(edit(z_opt)).cpu().numpy(), gain)[0]
    if face.photo is None:
        return png_bytes(edited)
    return encode_like(paste(face.photo.pixels, pasted_region(face, edited)), face.photo)[0]


def _face(running: Running, store: Store, latent_id: str, decode: Callable[[bytes], Photo] | None = None) -> Encoded:
    """A face the job edits, through store blips; gone (deleted or expired): a reason that does not
    name it (the job's record outlives the face and must not keep its id)."""
    try:
        return running.persist(lambda: load_face(store, latent_id, decode))
    except NotFound:
        raise LookupError(FACE_GONE_ERROR) from None


OUTSIDE_STROKES = 0.1  # weight of the rest of the face when strokes are painted: stay the user's


def _target(aligned: Aligned, strokes_png: bytes | None, gain: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel target (1, 3, S, S) in [-1, 1] and its weights (1, 1, S, S): the face itself,
    or with brush strokes (iGAN) painted over it, weighted fully where painted; lifted by `gain`
    (the editor's `exposure_gain`: what the user painted on a dim face is lifted with it)."""
    rgb = aligned.pixels.astype(np.float32)
    weights = aligned.valid.astype(np.float32)  # padding outside the photo does not count
    if strokes_png is not None:
        rgba = np.asarray(Image.open(io.BytesIO(strokes_png)).convert("RGBA")).astype(np.float32)
        painted = rgba[..., 3:] / 255
        rgb = (rgb * (1 - painted) + rgba[..., :3] * painted).astype(np.float32)
        weights = np.maximum(weights * OUTSIDE_STROKES, painted[..., 0]).astype(np.float32)
    rgb = lift(rgb[None], np.array([gain], np.float32))[0]
    return from_uint8(torch.from_numpy(rgb)[None]), torch.from_numpy(weights)[None, None]
