"""Optimised edits (Zhu et al. 2016) as jobs: checked and queued here, run by `worker.core.jobs`."""

from __future__ import annotations

import json
import time

import numpy as np
from PIL import Image

from worker.core.editor import Editor
from worker.core.engine import Engine
from worker.core.errors import InvalidParameter, NotFound, NotReady
from worker.core.images import decode_image, png_bytes
from worker.core.jobs import JobRecord, OptimizedEdit, read_job, write_job
from worker.core.latents import new_id
from worker.core.runner import JobRunner
from worker.core.settings import CoreSettings
from worker.core.store import Store, key

STROKES_MAX_PIXELS = 4096 * 4096


class OptimizedEdits:
    def __init__(self, engine: Engine, store: Store, runner: JobRunner, editor: Editor, settings: CoreSettings) -> None:
        self.engine, self.store, self.runner, self.editor, self.settings = engine, store, runner, editor, settings

    def submit(self, params: OptimizedEdit, strokes: bytes | None = None, mask: bytes | None = None) -> JobRecord:
        """Queue an optimised edit; with brush `strokes` (an image) and their `mask` (an image of
        the same size: painted where not black), towards the strokes under the mask (iGAN).
        Everything the job would fail on is refused here, before it is queued."""
        self.editor.check(params.edits, custom=False)
        if self.engine.model.D is None and params.lambda2 > 0:
            raise InvalidParameter(
                f"this model ({self.engine.cfg.family}) has no image discriminator, so the optimised edit has no "
                "realism term: send lambda2=0",
                family=self.engine.cfg.family,
            )
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
            self.runner.submit(job.id)
        except Exception:
            self.store.delete(key("job", job.id))  # not queued: leave no job that never runs
            raise
        return job

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
        if job.status == "failed":
            raise NotReady(f"job {job_id} failed: {job.error}", status=job.status)
        data = self.store.get(key("result", job_id))
        if job.status != "succeeded" or data is None:
            raise NotReady(
                f"job {job_id} is {job.status}; poll /jobs/{job_id} until it has succeeded", status=job.status
            )
        return data
