"""Job records and the task code of the optimised edit, shared by Celery and the local pool.

A job is a JSON record in the store (`job:<id>`), created by the API before it is queued;
the task reads its inputs by key, writes progress into the record, and puts the result
PNG under `result:<id>`. Tasks get ids and keys, never image bytes.

The record, not the worker that happens to run the job, says where the job is:
- a running job refreshes `heartbeat_at` every HEARTBEAT_S while it computes, even when the
  store is briefly unreachable (the computation goes on; the beat resumes);
- `check_job` (called by the API on every read of a job) turns a job whose heartbeat stopped
  `job_orphan_after_s` ago back into "queued" and asks for it to be run again, and fails it with
  a reason once it has started `job_max_retries + 1` times or has run past its time limit;
- the task itself fails a job at its time limit, and refuses to start one whose attempts
  are used up, so a job that kills its worker every time ends as "failed", not in a loop.
"""

from __future__ import annotations

import contextlib
import functools
import io
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel

from models.areas import HEAD
from models.editing import OptimizeOptions, optimize_latent
from models.edits import latent_edit
from worker.core.composite import edited_photo
from worker.core.engine import Engine
from worker.core.errors import Unavailable
from worker.core.faces import Aligned
from worker.core.images import decode_upload, encode_like, png_bytes
from worker.core.latents import load_face
from worker.core.settings import CoreSettings
from worker.core.store import Store, key

Status = Literal["queued", "running", "succeeded", "failed"]
HEARTBEAT_S = 0.25  # a running job writes its progress and heartbeat at most this often
TIME_LIMIT_ERROR = "the job ran past its time limit"


class OptimizedEdit(BaseModel):
    """What an optimised-edit job does (checked by the API before it is queued)."""

    latent_id: str  # the face to edit: its z, with `edits` applied, is the start z0
    target_id: str | None = None  # the face whose aligned crop is the pixel target (default: the face)
    edits: list[tuple[str, float]] = []  # (built-in attribute, strength)
    steps: int
    lr: float
    lambda1: float  # weight of ||z - z0||^2
    lambda2: float  # weight of the discriminator's realism term


class JobRecord(BaseModel):
    id: str
    status: Status = "queued"
    progress: float = 0.0
    step: int = 0
    steps: int
    error: str | None = None
    attempts: int = 0
    created_at: float
    updated_at: float
    started_at: float | None = None  # of the current attempt
    heartbeat_at: float | None = None
    params: OptimizedEdit


class JobTimeout(Exception):
    pass


def read_job(store: Store, job_id: str) -> JobRecord | None:
    raw = store.get(key("job", job_id))
    return None if raw is None else JobRecord.model_validate_json(raw)


def write_job(store: Store, job: JobRecord, ttl_s: int) -> None:
    """Store the record; a queued or running job's has no TTL, so a full store cannot evict it."""
    job.updated_at = time.time()
    active = job.status in ("queued", "running")
    store.put(key("job", job.id), job.model_dump_json().encode(), None if active else ttl_s)


def fail(store: Store, job: JobRecord, error: str, ttl_s: int) -> JobRecord:
    job.status, job.error = "failed", error
    write_job(store, job, ttl_s)
    return job


def attempts_used_up(job: JobRecord, settings: CoreSettings) -> str | None:
    """Why the job may not start again, or None: it starts at most job_max_retries + 1 times."""
    if job.attempts >= settings.job_max_retries + 1:
        return (
            f"the job was started {job.attempts} times and its worker stopped each time "
            f"(limit {settings.job_max_retries + 1}); giving up"
        )
    return None


def alive(job: JobRecord, settings: CoreSettings) -> bool:
    """A running job whose worker has shown a sign of life within job_orphan_after_s."""
    beat = job.heartbeat_at or job.updated_at
    return job.status == "running" and time.time() - beat < settings.job_orphan_after_s


def check_job(store: Store, job: JobRecord, settings: CoreSettings, requeue: Callable[[str], None]) -> JobRecord:
    """The API's view of a job: a running job without a heartbeat is orphaned, and is run again
    (or failed, when its attempts or its time are used up). Returns the record as it now is."""
    if job.status != "running" or alive(job, settings):
        return job
    if job.started_at is not None and time.time() - job.started_at > settings.job_time_limit_s:
        return fail(store, job, TIME_LIMIT_ERROR, settings.result_ttl_s)
    reason = attempts_used_up(job, settings)
    if reason:
        return fail(store, job, reason, settings.result_ttl_s)
    job.status, job.error = "queued", None
    write_job(store, job, settings.result_ttl_s)
    requeue(job.id)
    return job


def run_optimized_edit(job_id: str, store: Store, engine: Engine, settings: CoreSettings) -> None:
    """Run one optimised edit: z* from z (+ attribute edits) towards the target face, or towards
    the brush strokes painted on it; the result is the user's photo with the change applied
    (in the photo's format), or the 64 px face for a generated one."""
    ttl_s = settings.result_ttl_s
    job = read_job(store, job_id)
    if job is None or job.status in ("succeeded", "failed"):
        return  # expired, or a redelivered message of a job that has ended
    if alive(job, settings):
        return  # a duplicate message: another worker is running it
    reason = attempts_used_up(job, settings)
    if reason:
        fail(store, job, reason, ttl_s)
        return
    job.attempts += 1
    now = time.time()
    job.status, job.step, job.progress, job.started_at, job.heartbeat_at = "running", 0, 0.0, now, now
    write_job(store, job, ttl_s)
    deadline = time.monotonic() + settings.job_time_limit_s

    try:
        p = job.params
        face = load_face(store, p.latent_id, functools.partial(decode_upload, settings=settings))
        target_face = load_face(store, p.target_id) if p.target_id else face
        if target_face.aligned is None:
            raise LookupError("the face to edit has no aligned crop (a generated face): give a target_id")
        change = latent_edit([(engine.attribute(a), s) for a, s in p.edits], engine.cfg.latent_size)
        z = face.z[None] + change.offset
        strokes = store.get(key("strokes", job_id))
        target, weights = _target(target_face.aligned, strokes)
        opts = OptimizeOptions(steps=p.steps, lr=p.lr, lambda1=p.lambda1, lambda2=p.lambda2)

        def progress(step: int, total: int, _objective: float) -> None:
            if time.monotonic() > deadline:
                raise JobTimeout
            if time.time() - (job.heartbeat_at or 0) > HEARTBEAT_S or step == total:
                job.step, job.progress, job.heartbeat_at = step, step / total, time.time()
                with contextlib.suppress(Unavailable):  # the store blinked: keep computing, beat again next time
                    write_job(store, job, ttl_s)

        device = engine.device
        z_opt, _ = optimize_latent(
            engine.model.G, engine.model.D, z.to(device), target.to(device), opts, weights.to(device), progress
        )
        if face.photo is not None and face.aligned is not None:  # the change, applied to the user's photo
            # where the edits act, as calibrated (the whole head for brush strokes, which may be anywhere)
            area = HEAD if strokes is not None else change.area
            result, _ = encode_like(edited_photo(engine, face, z_opt.cpu(), area=area), face.photo)
        else:
            result = png_bytes(np.ascontiguousarray(engine.render(z_opt.cpu())[0]))
        _persist(lambda: store.put(key("result", job_id), result, ttl_s), deadline)
        job.status, job.progress, job.step, job.error = "succeeded", 1.0, opts.steps, None
    except JobTimeout:
        job.status, job.error = "failed", TIME_LIMIT_ERROR
    except Unavailable:
        raise  # the store is down: the record cannot be written; check_job will see no heartbeat
    except Exception as e:  # noqa: BLE001 - the job record says what went wrong
        job.status, job.error = "failed", f"{type(e).__name__}: {e}"
    _persist(lambda: write_job(store, job, ttl_s), deadline + 60)


OUTSIDE_STROKES = 0.1  # weight of the rest of the face when strokes are painted: stay the user's


def _target(aligned: Aligned, strokes_png: bytes | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel target (1, 3, S, S) in [-1, 1] and its weights (1, 1, S, S): the face itself,
    or with brush strokes (iGAN) painted over it, weighted fully where painted."""
    rgb = aligned.pixels.astype(np.float32)
    weights = aligned.valid.astype(np.float32)  # padding outside the photo does not count
    if strokes_png is not None:
        rgba = np.asarray(Image.open(io.BytesIO(strokes_png)).convert("RGBA")).astype(np.float32)
        painted = rgba[..., 3:] / 255
        rgb = (rgb * (1 - painted) + rgba[..., :3] * painted).astype(np.float32)
        weights = np.maximum(weights * OUTSIDE_STROKES, painted[..., 0]).astype(np.float32)
    target = torch.from_numpy(rgb).permute(2, 0, 1)[None] / 127.5 - 1
    return target, torch.from_numpy(weights)[None, None]


def _persist(write: Callable[[], None], deadline: float) -> None:
    """Retry a store write through a blip (Redis restarting), until the deadline."""
    delay = 0.2
    while True:
        try:
            write()
            return
        except Unavailable:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
