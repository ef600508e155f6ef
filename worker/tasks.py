"""Celery tasks: thin wrappers that load the model once per worker process."""

from __future__ import annotations

from functools import lru_cache

import torch

from worker.celery_app import celery_app
from worker.pipeline.engines import AnyEngine, load_engine
from worker.service.optimized import run_optimized_edit
from worker.service.settings import get_core_settings
from worker.service.store import Store, make_store


@lru_cache
def _resources() -> tuple[AnyEngine, Store]:
    s = get_core_settings()
    # One torch thread per pool process unless told otherwise: Celery runs one process per core,
    # and a pool process forked from a parent with threads gets a broken OpenMP pool (measured: a
    # replacement child ran 400 steps of the tiny model in 147 s instead of a few).
    torch.set_num_threads(s.torch_threads or 1)
    engine = load_engine(s.checkpoint, s.device, batch_wait_ms=0)  # no batching in a worker
    engine.warm_up()
    return engine, make_store(s.redis_url)


@celery_app.task(name="faceedit.optimized_edit")
def optimized_edit(job_id: str) -> None:
    """The job code itself enforces the time limit, caps attempts and retries through store
    blips. An exception here (the store down past every retry) makes Celery drop the message
    (acks_late, not acked on failure: rejected without requeue); the job's heartbeat stops and
    the API's JobSweeper queues it again."""
    engine, store = _resources()
    run_optimized_edit(job_id, store, engine, get_core_settings())
