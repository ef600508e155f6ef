"""Celery tasks: thin wrappers that load the model once per worker process."""

from __future__ import annotations

from functools import lru_cache

from celery.exceptions import SoftTimeLimitExceeded

from worker.celery_app import celery_app
from worker.core.engine import Engine
from worker.core.errors import Unavailable
from worker.core.jobs import read_job, run_optimized_edit, write_job
from worker.core.settings import get_core_settings
from worker.core.store import Store, make_store


@lru_cache
def _resources() -> tuple[Engine, Store]:
    s = get_core_settings()
    engine = Engine.from_checkpoint(str(s.checkpoint), s.device, batch_wait_ms=0)  # no batching in a worker
    return engine, make_store(s.redis_url)


@celery_app.task(
    name="faceedit.optimized_edit",
    autoretry_for=(Unavailable, ConnectionError),
    retry_backoff=True,
    max_retries=get_core_settings().job_max_retries,
)
def optimized_edit(job_id: str) -> None:
    engine, store = _resources()
    try:
        run_optimized_edit(job_id, store, engine, get_core_settings().result_ttl_s)
    except SoftTimeLimitExceeded:
        job = read_job(store, job_id)
        if job is not None:
            job.status, job.error = "failed", "the job ran past its time limit"
            write_job(store, job, get_core_settings().result_ttl_s)
