"""Job records and the task code of the optimised edit, shared by Celery and the local pool.

A job is a JSON record in the store (`job:<id>`), created by the API before it is queued;
the task reads its inputs by key, writes progress into the record, and puts the result
PNG under `result:<id>`. Tasks get ids and keys, never image bytes.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel

from models.editing import OptimizeOptions, optimize_latent
from worker.core.engine import Engine
from worker.core.images import png_bytes
from worker.core.store import Store, key

Status = Literal["queued", "running", "succeeded", "failed"]


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
    params: dict[str, Any]


def read_job(store: Store, job_id: str) -> JobRecord | None:
    raw = store.get(key("job", job_id))
    return None if raw is None else JobRecord.model_validate_json(raw)


def write_job(store: Store, job: JobRecord, ttl_s: int) -> None:
    """Store the record; a queued or running job's has no TTL, so a full store cannot evict it."""
    job.updated_at = time.time()
    active = job.status in ("queued", "running")
    store.put(key("job", job.id), job.model_dump_json().encode(), None if active else ttl_s)


def run_optimized_edit(job_id: str, store: Store, engine: Engine, ttl_s: int) -> None:
    """Run one optimised edit: z* from E(x) (+ attribute edits) towards the target image."""
    job = read_job(store, job_id)
    if job is None or job.status == "succeeded":
        return  # expired, or a redelivered message of a job that already finished
    p = job.params
    job.status, job.attempts, job.step, job.progress = "running", job.attempts + 1, 0, 0.0
    write_job(store, job, ttl_s)
    try:
        latent = store.get(key("latent", p["latent_id"]))
        target_png = store.get(key("face", p.get("target_id") or p["latent_id"]))
        if latent is None or target_png is None:
            raise LookupError("the face to edit expired before the job ran; encode it again")
        z0 = torch.tensor(json.loads(latent)["z"], dtype=torch.float32)[None]
        z = engine.edit_latent(z0, [(e["attribute"], e["strength"]) for e in p["edits"]])
        rgba = torch.from_numpy(np.asarray(Image.open(io.BytesIO(target_png)).convert("RGBA")).copy())
        target = rgba[..., :3].permute(2, 0, 1)[None].float() / 127.5 - 1
        mask = (rgba[..., 3] > 127).float()[None, None]  # padding outside the photo does not count
        opts = OptimizeOptions(steps=p["steps"], lr=p["lr"], lambda1=p["lambda1"], lambda2=p["lambda2"])
        last = [0.0]

        def progress(step: int, total: int, _objective: float) -> None:
            if time.monotonic() - last[0] > 0.25 or step == total:  # throttle store writes
                last[0] = time.monotonic()
                job.step, job.progress = step, step / total
                write_job(store, job, ttl_s)

        device = engine.device
        assert engine.model.D is not None
        z_opt, _ = optimize_latent(
            engine.model.G, engine.model.D, z.to(device), target.to(device), opts, mask.to(device), progress
        )
        img = engine.render(z_opt.cpu())[0]
        store.put(key("result", job_id), png_bytes(np.ascontiguousarray(img)), ttl_s)
        job.status, job.progress, job.step = "succeeded", 1.0, opts.steps
    except Exception as e:  # noqa: BLE001 - the job record says what went wrong
        job.status, job.error = "failed", f"{type(e).__name__}: {e}"
    write_job(store, job, ttl_s)
