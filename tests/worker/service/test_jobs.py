"""What the job record says when workers die, time runs out, or the store blinks (no Redis needed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from worker.pipeline.engine import Engine
from worker.pipeline.errors import Unavailable
from worker.service.jobs import (
    ACTIVE,
    TIME_LIMIT_ERROR,
    JobRecord,
    JobSweeper,
    read_job,
    write_job,
)
from worker.service.optimized import OptimizedEditJobs, run_optimized_edit
from worker.service.settings import CoreSettings
from worker.service.store import MemoryStore

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
        params={"latent_id": "f", "steps": 10, "lr": 0.01, "lambda1": 0.01, "lambda2": 0.0},
        started_at=now - started_ago,
        heartbeat_at=now - beat_ago,
    )
    write_job(store, job, 60)
    return job


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FlakyStore(MemoryStore):
    """A store that can be switched off, as Redis stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def get(self, key: str) -> bytes | None:
        if self.down:
            raise Unavailable("down")
        return super().get(key)

    def members(self, key: str) -> list[str]:
        if self.down:
            raise Unavailable("down")
        return super().members(key)


def _sweeper(store: MemoryStore, requeued: list[str]) -> tuple[JobSweeper, Clock]:
    clock = Clock()
    return JobSweeper(store, SETTINGS, requeued.append, clock=clock), clock


def _beat(store: MemoryStore) -> None:
    job = read_job(store, "j")
    assert job is not None
    job.heartbeat_at = time.time()
    write_job(store, job, 60)


def test_a_job_whose_worker_beats_is_left_alone() -> None:
    store, requeued = MemoryStore(), []
    _running(store, 1, 5, 1)
    sweeper, clock = _sweeper(store, requeued)
    for _ in range(5):
        sweeper.sweep()
        clock.now += 6  # longer than the window in all, but it beats between every two looks
        _beat(store)
    assert sweeper.sweep() == [] and read_job(store, "j").status == "running"  # type: ignore[union-attr]


def test_an_orphan_is_queued_again_once_unchanged_for_the_window() -> None:
    store, requeued = MemoryStore(), []
    _running(store, 1, 30, 20)  # its heartbeat already looks old: that alone is not enough
    sweeper, clock = _sweeper(store, requeued)
    assert sweeper.sweep() == []
    clock.now = 9
    assert sweeper.sweep() == []
    clock.now = 10.5  # unchanged for the whole window (10 s) while the store answered
    assert sweeper.sweep() == ["j"] and requeued == ["j"]
    assert read_job(store, "j").status == "queued"  # type: ignore[union-attr]
    clock.now = 30
    assert sweeper.sweep() == [] and requeued == ["j"]  # queued once, not on every pass


def test_time_while_the_store_is_down_does_not_count() -> None:
    store, requeued = FlakyStore(), []
    _running(store, 1, 30, 20)
    sweeper, clock = _sweeper(store, requeued)
    sweeper.sweep()
    store.down, clock.now = True, 5
    assert sweeper.sweep() == []
    store.down, clock.now = False, 40  # a 35 s outage, during which no heartbeat could land
    assert sweeper.sweep() == []  # the worker gets a whole window to be heard again
    clock.now = 45
    _beat(store)
    clock.now = 54
    assert sweeper.sweep() == [] and requeued == []
    clock.now = 65
    assert sweeper.sweep() == ["j"]  # silent for a window with the store up: now it is orphaned


def test_a_beat_between_the_sweepers_look_and_its_write_wins() -> None:
    class BeatOnSwap(MemoryStore):
        def swap(self, key: str, expected: bytes | None, value: bytes, ttl_s: int | None) -> bool:
            _beat(self)  # the worker is heard just before the sweeper writes
            return super().swap(key, expected, value, ttl_s)

    store, requeued = BeatOnSwap(), []
    _running(store, 1, 30, 20)
    sweeper, clock = _sweeper(store, requeued)
    sweeper.sweep()
    clock.now = 11
    assert sweeper.sweep() == [] and requeued == []
    assert read_job(store, "j").status == "running"  # type: ignore[union-attr]


def test_an_orphan_whose_attempts_are_used_up_fails_with_the_reason() -> None:
    store, requeued = MemoryStore(), []
    _running(store, 2, 30, 20)
    sweeper, clock = _sweeper(store, requeued)
    sweeper.sweep()
    clock.now = 11
    sweeper.sweep()
    job = read_job(store, "j")
    assert job is not None and job.status == "failed" and "started 2 times" in (job.error or "") and requeued == []
    assert store.members(ACTIVE) == []  # ended: no longer swept


def test_a_job_killed_at_its_hard_time_limit_fails_as_such() -> None:
    store, requeued = MemoryStore(), []
    _running(store, 1, 120, 20)
    sweeper, clock = _sweeper(store, requeued)
    sweeper.sweep()
    clock.now = 11
    sweeper.sweep()
    job = read_job(store, "j")
    assert job is not None and job.status == "failed" and job.error == TIME_LIMIT_ERROR


def test_a_requeue_that_could_not_be_sent_is_sent_on_a_later_pass() -> None:
    store, sent, fails = MemoryStore(), [], [True]

    def requeue(job_id: str) -> None:
        if fails.pop(0) if fails else False:
            raise Unavailable("the queue is down")
        sent.append(job_id)

    _running(store, 1, 30, 20)
    clock = Clock()
    sweeper = JobSweeper(store, SETTINGS, requeue, clock=clock)
    sweeper.sweep()
    clock.now = 11
    assert sweeper.sweep() == ["j"] and sent == []  # queued in the record, the message not sent
    assert sweeper.sweep() == [] and sent == ["j"]


def test_reading_a_job_never_changes_it() -> None:
    store = MemoryStore()
    before = _running(store, 1, 30, 20)  # its heartbeat long stopped: only the sweeper may judge that
    jobs = OptimizedEditJobs(None, store, None, None, SETTINGS)  # type: ignore[arg-type]
    assert jobs.status("j") == before and read_job(store, "j") == before


def _queued(store: MemoryStore, latent: str, steps: int = 500) -> None:
    now = time.time()
    params = {"latent_id": latent, "edits": [], "steps": steps, "lr": 0.01, "lambda1": 0.01, "lambda2": 0.0}
    write_job(store, JobRecord(id="j", steps=steps, created_at=now, updated_at=now, params=params), 60)


@pytest.fixture(scope="module")
def bundled_engine() -> Engine:
    return Engine.from_checkpoint(
        str(Path(__file__).resolve().parents[3] / "checkpoints" / "celeba64"), batch_wait_ms=0
    )


def _store_with_face(engine: Engine) -> MemoryStore:
    import json

    import numpy as np

    from worker.pipeline.images import png_bytes

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


def test_a_worker_starts_only_a_queued_job_and_only_once(bundled_engine: Engine) -> None:
    store = _store_with_face(bundled_engine)
    _queued(store, "f", steps=5)
    job = read_job(store, "j")
    assert job is not None
    job.status, job.attempts, job.heartbeat_at = "running", 1, time.time() - 3600
    write_job(store, job, 60)
    run_optimized_edit("j", store, bundled_engine, SETTINGS)  # a redelivery: dropped, however old the beat
    assert read_job(store, "j").attempts == 1 and read_job(store, "j").status == "running"  # type: ignore[union-attr]
    job.status = "queued"
    write_job(store, job, 60)
    run_optimized_edit("j", store, bundled_engine, SETTINGS)
    run_optimized_edit("j", store, bundled_engine, SETTINGS)  # a second delivery of the same message
    done = read_job(store, "j")
    assert done is not None and done.status == "succeeded" and done.attempts == 2, done
