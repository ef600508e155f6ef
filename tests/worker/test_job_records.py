"""What the job record says when workers die, time runs out, or the store blinks (no Redis needed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from worker.core.engine import Engine
from worker.core.errors import Unavailable
from worker.core.jobs import TIME_LIMIT_ERROR, JobRecord, check_job, read_job, run_optimized_edit, write_job
from worker.core.settings import CoreSettings
from worker.core.store import MemoryStore

SETTINGS = CoreSettings(job_max_retries=1, job_orphan_after_s=10, job_time_limit_s=60)


def _running(store: MemoryStore, attempts: int, started_ago: float, beat_ago: float) -> JobRecord:
    now = time.time()
    job = JobRecord(
        id="j",
        status="running",
        steps=10,
        attempts=attempts,
        created_at=now,
        updated_at=now,
        params={},
        started_at=now - started_ago,
        heartbeat_at=now - beat_ago,
    )
    write_job(store, job, 60)
    return job


def test_a_live_job_is_left_alone() -> None:
    store, requeued = MemoryStore(), []
    job = check_job(store, _running(store, 1, 5, 1), SETTINGS, requeued.append)
    assert job.status == "running" and requeued == []


def test_an_orphaned_job_is_queued_again() -> None:
    store, requeued = MemoryStore(), []
    job = check_job(store, _running(store, 1, 30, 20), SETTINGS, requeued.append)
    assert job.status == "queued" and requeued == ["j"]
    assert read_job(store, "j").status == "queued"  # type: ignore[union-attr]


def test_an_orphan_whose_attempts_are_used_up_fails_with_the_reason() -> None:
    store, requeued = MemoryStore(), []
    job = check_job(store, _running(store, 2, 30, 20), SETTINGS, requeued.append)
    assert job.status == "failed" and "started 2 times" in (job.error or "") and requeued == []


def test_a_job_killed_at_its_hard_time_limit_fails_as_such() -> None:
    store, requeued = MemoryStore(), []
    job = check_job(store, _running(store, 1, 120, 20), SETTINGS, requeued.append)
    assert job.status == "failed" and job.error == TIME_LIMIT_ERROR


def _queued(store: MemoryStore, latent: str, steps: int = 500) -> None:
    now = time.time()
    params = {"latent_id": latent, "edits": [], "steps": steps, "lr": 0.01, "lambda1": 0.01, "lambda2": 0.0}
    write_job(store, JobRecord(id="j", steps=steps, created_at=now, updated_at=now, params=params), 60)


@pytest.fixture(scope="module")
def bundled_engine() -> Engine:
    return Engine.from_checkpoint(
        str(Path(__file__).resolve().parents[2] / "checkpoints" / "celeba64"), batch_wait_ms=0
    )


def _store_with_face(engine: Engine) -> MemoryStore:
    import json

    import numpy as np

    from worker.core.images import png_bytes

    store = MemoryStore()
    store.put("latent:f", json.dumps({"z": [0.0] * engine.cfg.nz, "grayscale": False, "matrix": []}).encode(), 60)
    store.put("face:f", png_bytes(np.full((64, 64, 4), 200, np.uint8)), 60)
    return store


def test_the_job_code_stops_at_its_time_limit(bundled_engine: Engine) -> None:
    store = _store_with_face(bundled_engine)
    _queued(store, "f", steps=500)  # ~10 s of work on this model
    run_optimized_edit("j", store, bundled_engine, CoreSettings(job_time_limit_s=1))
    job = read_job(store, "j")
    assert job is not None and job.status == "failed" and job.error == TIME_LIMIT_ERROR and job.step < 500


def test_a_job_started_too_often_is_refused(bundled_engine: Engine) -> None:
    store = _store_with_face(bundled_engine)
    _queued(store, "f", steps=5)
    job = read_job(store, "j")
    assert job is not None
    job.attempts = SETTINGS.job_max_retries + 1
    write_job(store, job, 60)
    run_optimized_edit("j", store, bundled_engine, SETTINGS)
    assert read_job(store, "j").status == "failed"  # type: ignore[union-attr]


class BlinkingStore(MemoryStore):
    """Unreachable for a few writes in the middle of the job, as Redis restarting is."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def put(self, key: str, value: bytes, ttl_s: int | None) -> None:
        self.writes += 1
        if key.startswith("job:") and 3 <= self.writes <= 8 or key.startswith("result:") and self.writes < 12:
            raise Unavailable("blink")
        super().put(key, value, ttl_s)


def test_a_store_blink_mid_job_loses_nothing(bundled_engine: Engine) -> None:
    store = BlinkingStore()
    base = _store_with_face(bundled_engine)
    for k in ("latent:f", "face:f"):
        MemoryStore.put(store, k, base.get(k), 60)  # type: ignore[arg-type]
    _queued(store, "f", steps=60)
    run_optimized_edit("j", store, bundled_engine, SETTINGS)
    job = read_job(store, "j")
    assert job is not None and job.status == "succeeded", job
    assert store.get("result:j") is not None
