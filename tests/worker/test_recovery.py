"""Workers that outlive Redis, jobs that finish with nobody watching, and never twice: each with a
real redis-server, Celery workers started as the README starts them, and the API in process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.worker.conftest import ROOT, RedisServer, Workers

pytestmark = pytest.mark.redis

LONG_STEPS = 400  # several seconds of work for the tiny model, so there is time to break things mid-job


def _api(redis_server: RedisServer, tiny_checkpoint: Path, **overrides: Any) -> TestClient:
    settings = Settings(checkpoint=tiny_checkpoint, redis_url=redis_server.url, refine_steps=0, **overrides)
    return TestClient(create_app(settings))


def _submit(api: TestClient, photos: Path, steps: int = LONG_STEPS) -> str:
    r = api.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())})
    assert r.status_code == 200, r.text
    job = api.post("/edits/optimized", json={"latent_id": r.json()["latent_id"], "steps": steps, "lr": 0.01})
    assert job.status_code == 202, job.text
    return job.json()["job_id"]  # type: ignore[no-any-return]


def _record(url: str, job_id: str) -> dict[str, Any] | None:
    """The job record straight from Redis: looking at it this way is not a client read of /jobs."""
    try:
        raw = redis.Redis.from_url(url, socket_timeout=2).get(f"job:{job_id}")
    except redis.RedisError:
        return None  # Redis restarting: no answer yet
    return None if raw is None else json.loads(raw)  # type: ignore[no-any-return]


def _until(what: str, condition: Callable[[], dict[str, Any] | None], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def _status(
    url: str, job_id: str, statuses: set[str], worker: subprocess.Popen[bytes] | None = None
) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        if worker is not None and worker.poll() is not None:
            raise AssertionError(f"the worker exited with code {worker.returncode}")
        record = _record(url, job_id)
        return record if record is not None and record["status"] in statuses else None

    return check


@pytest.mark.parametrize("concurrency", [None, 1], ids=["default-concurrency", "concurrency-1"])
def test_a_worker_outlives_a_redis_kill_and_restart(
    redis_server: RedisServer,
    workers: Workers,
    tiny_checkpoint: Path,
    photos: Path,
    concurrency: int | None,
) -> None:
    worker = workers.start_as_readme(concurrency)
    with _api(redis_server, tiny_checkpoint) as api:
        job_id = _submit(api, photos)
        _until("the job runs", _status(redis_server.url, job_id, {"running"}), 300)
        redis_server.kill()  # mid-job, with the job's message unacknowledged
        time.sleep(3)  # an outage of a few seconds: a duration, not a condition to wait for
        redis_server.start()  # same port and folder: the append-only file brings its data back
        ended = {"succeeded", "failed"}
        done = _until("the first job ends", _status(redis_server.url, job_id, ended, worker), 300)
        assert done["status"] == "succeeded", done
        after = _until("a job is accepted", lambda: _submitted(api, photos), 60)["job_id"]
        second = _until("the second job ends", _status(redis_server.url, after, ended, worker), 300)
        assert second["status"] == "succeeded", second
    assert worker.poll() is None, workers.log(worker)[-3000:]  # the same process, never restarted
    log = workers.log(worker)
    assert "Unrecoverable error" not in log and "Connection to broker lost" in log


def _submitted(api: TestClient, photos: Path) -> dict[str, Any] | None:
    try:
        return {"job_id": _submit(api, photos, steps=20)}
    except AssertionError:  # 503 while the API's store is in its cool-down after the outage
        return None


def test_a_job_whose_pool_child_is_killed_finishes_with_nobody_reading_it(
    redis_server: RedisServer, workers: Workers, tiny_checkpoint: Path, photos: Path
) -> None:
    workers.start_as_readme()
    with _api(redis_server, tiny_checkpoint) as api:  # the default orphan window (15 s)
        job_id = _submit(api, photos)
        running = _until("the job runs", _status(redis_server.url, job_id, {"running"}), 300)
        child = int(running["worker"].split(":")[1])
        assert child != workers.procs[0].pid  # a pool child, not the worker's main process
        os.kill(child, signal.SIGKILL)
        killed_at = time.monotonic()
        # Celery redelivers the message at once; the worker drops it (the record says running). From
        # here only the API's sweeper can bring the job back, and no one calls /jobs.
        done = _until("the job ends", _status(redis_server.url, job_id, {"succeeded", "failed"}), 300)
        took = time.monotonic() - killed_at
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    assert took < 60, f"the job took {took:.0f} s after its pool child was killed"
    assert workers.procs[0].poll() is None


def _stepping(url: str, job_id: str) -> dict[str, Any] | None:
    record = _record(url, job_id)
    return record if record is not None and record["status"] == "running" and record["step"] > 0 else None


def test_a_live_worker_s_job_is_not_started_again_after_an_outage_longer_than_the_orphan_window(
    redis_server: RedisServer, workers: Workers, photos: Path
) -> None:
    # The job's pool child is paused through the outage and a while after it (SIGSTOP), so clients
    # surely read a running job whose last heartbeat is older than the window, however fast the
    # machine computes; the worker's main process stays alive, as a worker whose child is busy does.
    bundled = ROOT / "checkpoints" / "celeba64"
    workers.env = {**workers.env, "FACEEDIT_CHECKPOINT": str(bundled)}
    workers.start_as_readme()  # default concurrency: a free pool slot could run a second copy
    with _api(redis_server, bundled, job_orphan_after_s=4) as api:
        job_id = _submit(api, photos, steps=500)
        running = _until("the job computes", lambda: _stepping(redis_server.url, job_id), 300)
        child = int(running["worker"].split(":")[1])
        os.kill(child, signal.SIGSTOP)
        seen: list[str] = []
        try:
            redis_server.stop()
            time.sleep(9)  # more than twice the orphan window without a single heartbeat landing
            redis_server.start()

            def read() -> dict[str, Any] | None:  # a client polling, as the page does
                r = api.get(f"/jobs/{job_id}")
                if r.status_code != 200:
                    return None  # 503 during the store's cool-down
                seen.append(r.json()["status"])
                return r.json()  # type: ignore[no-any-return]

            _until("a client reads the job", read, 60)
            time.sleep(2)  # more reads would find the heartbeat older still
            read()
        finally:
            os.kill(child, signal.SIGCONT)

        def ended() -> dict[str, Any] | None:
            body = read()
            return body if body is not None and body["status"] in ("succeeded", "failed") else None

        done = _until("the job ends", ended, 600)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1 and "queued" not in seen, (done, seen)  # never given to a second worker
    assert "running" in seen, seen  # it was read while its heartbeat was still old: the case at stake
