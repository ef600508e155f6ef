"""Jobs through a real Redis and real Celery workers: run, survive a killed worker, Redis down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.worker.conftest import RedisServer, Workers

pytestmark = pytest.mark.redis


@pytest.fixture
def api(redis_server: RedisServer, tiny_checkpoint: Path) -> Iterator[TestClient]:
    settings = Settings(
        checkpoint=tiny_checkpoint, redis_url=redis_server.url, max_queue=3, job_orphan_after_s=3, job_max_retries=1
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _latent(api: TestClient, photos: Path) -> str:
    r = api.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())})
    assert r.status_code == 200, r.text
    return r.json()["latent_id"]  # type: ignore[no-any-return]


def _wait_for(
    api: TestClient, job_id: str, statuses: set[str], timeout: float, attempts: int | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = api.get(f"/jobs/{job_id}")
        if r.status_code == 503:  # Redis just back: the store's one-second cool-down (it recovers by itself)
            time.sleep(0.1)
            continue
        body = r.json()
        if body["status"] in statuses and (attempts is None or body["attempts"] >= attempts):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {statuses}: {body}")


def test_job_runs_on_a_celery_worker(api: TestClient, workers: Workers, photos: Path) -> None:
    workers.start()
    lid = _latent(api, photos)
    r = api.post(
        "/edits/optimized", json={"latent_id": lid, "edits": [{"attribute": "Male", "strength": 1}], "steps": 20}
    )
    assert r.status_code == 202
    done = _wait_for(api, r.json()["job_id"], {"succeeded", "failed"}, 90)
    assert done["status"] == "succeeded", done
    assert api.get(r.json()["result_url"]).headers["content-type"] == "image/png"
    ready = api.get("/ready").json()
    assert ready["queue"] == "redis" and ready["ready"]


def _start_long_job(api: TestClient, photos: Path) -> str:
    lid = _latent(api, photos)
    job_id = api.post("/edits/optimized", json={"latent_id": lid, "steps": 500, "lr": 0.01}).json()["job_id"]
    return job_id  # type: ignore[no-any-return]


def _kill_when_running(api: TestClient, workers: Workers, job_id: str, attempt: int) -> None:
    running = _wait_for(api, job_id, {"running", "succeeded", "failed"}, 300, attempts=attempt)
    assert running["status"] == "running" and running["attempts"] == attempt, running
    workers.procs[-1].kill()  # SIGKILL mid-job: no chance to ack or clean up
    workers.procs[-1].wait(10)


def test_killed_worker_does_not_lose_the_job(api: TestClient, workers: Workers, photos: Path) -> None:
    workers.start()
    job_id = _start_long_job(api, photos)
    _kill_when_running(api, workers, job_id, attempt=1)
    assert api.get(f"/jobs/{job_id}").json()["status"] == "running"
    workers.start()  # a worker comes back; the orphaned job (no heartbeat) is queued again for it
    # with the default visibility timeout (330 s) Celery alone would wait; the heartbeat does not
    done = _wait_for(api, job_id, {"succeeded", "failed"}, 600)
    assert done["status"] == "succeeded" and done["attempts"] == 2, done


def test_a_job_that_kills_its_worker_every_time_ends_failed(api: TestClient, workers: Workers, photos: Path) -> None:
    workers.start()
    job_id = _start_long_job(api, photos)
    _kill_when_running(api, workers, job_id, attempt=1)
    workers.start()
    _kill_when_running(api, workers, job_id, attempt=2)  # job_max_retries=1: that was the last try
    failed = _wait_for(api, job_id, {"failed", "succeeded", "queued"}, 120)
    assert failed["status"] == "failed" and "started 2 times" in failed["error"], failed


def test_redis_blinking_mid_job_loses_nothing(
    api: TestClient, redis_server: RedisServer, workers: Workers, photos: Path
) -> None:
    workers.start()
    job_id = _start_long_job(api, photos)
    assert _wait_for(api, job_id, {"running", "succeeded"}, 300)["status"] == "running"
    redis_server.stop()  # the worker keeps computing; its heartbeats fail quietly
    time.sleep(3)  # a blip of a few seconds, not a condition to wait for
    redis_server.start()
    done = _wait_for(api, job_id, {"succeeded", "failed"}, 600)
    assert done["status"] == "succeeded", done


def test_queue_full_answers_429_without_workers(api: TestClient, photos: Path) -> None:
    lid = _latent(api, photos)
    codes = [api.post("/edits/optimized", json={"latent_id": lid, "steps": 5}).status_code for _ in range(5)]
    assert codes == [202, 202, 202, 429, 429]


def test_redis_down_gives_503_and_recovers(
    api: TestClient, redis_server: RedisServer, workers: Workers, photos: Path
) -> None:
    lid = _latent(api, photos)
    queued = api.post("/edits/optimized", json={"latent_id": lid, "steps": 5}).json()["job_id"]
    redis_server.stop()
    t0 = time.monotonic()
    assert api.get("/ready").status_code == 503
    r = api.post("/edits/optimized", json={"latent_id": lid, "steps": 5})
    assert r.status_code == 503 and "unreachable" in r.json()["detail"]
    assert api.get(f"/jobs/{queued}").status_code == 503
    assert time.monotonic() - t0 < 15  # clear answers, no hang
    redis_server.start()  # same port, same data folder: the append-only file brings the queue back
    deadline = time.monotonic() + 60
    while api.get("/ready").status_code != 200:  # back by itself once the store's cool-down has passed
        assert time.monotonic() < deadline
        time.sleep(0.2)
    workers.start()
    assert _wait_for(api, queued, {"succeeded", "failed"}, 90)["status"] == "succeeded"


def test_uploads_expire_from_redis(redis_server: RedisServer, tiny_checkpoint: Path, photos: Path) -> None:
    import redis

    settings = Settings(checkpoint=tiny_checkpoint, redis_url=redis_server.url, latent_ttl_s=30)
    with TestClient(create_app(settings)) as api:
        lid = _latent(api, photos)
    client = redis.Redis.from_url(redis_server.url)
    for key in (f"photo:{lid}", f"face:{lid}", f"latent:{lid}"):
        assert 0 < client.ttl(key) <= 30, key
    assert client.get(f"photo:{lid}") == (photos / "astronaut.png").read_bytes()


def test_a_full_redis_evicts_uploads_never_the_queue(api: TestClient, redis_server: RedisServer, photos: Path) -> None:
    import redis as redis_lib

    lid = _latent(api, photos)
    queued = api.post("/edits/optimized", json={"latent_id": lid, "steps": 5})  # no worker: it stays queued
    assert queued.status_code == 202
    client = redis_lib.Redis.from_url(redis_server.url)
    for i in range(160):  # 160 uploads of 1 MB into a 64 MB Redis
        client.set(f"photo:filler{i}", b"\0" * 1_000_000, ex=3600)
    info = client.info("memory")
    # Redis counts memory as its eviction does: without the append-only file's buffers
    assert info["used_memory"] - info["mem_not_counted_for_evict"] <= info["maxmemory"] * 1.05
    assert client.llen("edits") == 1  # the queued job's message was not evicted
    assert api.get(f"/jobs/{queued.json()['job_id']}").json()["status"] == "queued"  # nor its record


def test_a_frozen_redis_gives_503_and_health_stays_up(api: TestClient, redis_server: RedisServer, photos: Path) -> None:
    import signal

    lid = _latent(api, photos)
    job_id = api.post("/edits/optimized", json={"latent_id": lid, "steps": 5}).json()["job_id"]
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)  # alive but silent: every read would time out
    try:
        codes = [api.get(f"/jobs/{job_id}").status_code for _ in range(10)]
        assert codes == [503] * 10
        assert api.get("/health").status_code == 200
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 60
    while api.get(f"/jobs/{job_id}").status_code != 200:  # back by itself, once the cool-down has passed
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_ready_answers_within_a_second_on_a_frozen_redis(api: TestClient, redis_server: RedisServer) -> None:
    import signal

    assert api.get("/ready").status_code == 200
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)
    try:
        for _ in range(3):  # the first one meets the frozen socket; the later ones the store's cool-down
            t0 = time.monotonic()
            r = api.get("/ready")
            took = time.monotonic() - t0
            assert r.status_code == 503 and not r.json()["queue_reachable"], r.text
            assert took < 1.0, f"/ready took {took:.2f} s"
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)


def test_a_burst_of_submits_never_passes_the_queue_limit(
    redis_server: RedisServer, tiny_checkpoint: Path, photos: Path
) -> None:
    import threading

    import httpx
    import redis as redis_lib

    from app.serve import start_server

    limit = 5
    env = {"FACEEDIT_CHECKPOINT": str(tiny_checkpoint), "FACEEDIT_REDIS_URL": redis_server.url}
    proc, url = start_server({**env, "FACEEDIT_MAX_QUEUE": str(limit), "FACEEDIT_REFINE_STEPS": "0"})
    try:
        files = {"file": ("a.png", (photos / "astronaut.png").read_bytes())}
        lid = httpx.post(url + "/encode", files=files, timeout=60).json()["latent_id"]
        start, codes = threading.Barrier(32), []

        def submit() -> None:
            with httpx.Client(timeout=60) as client:
                start.wait()  # all 32 at once, no worker draining the queue
                codes.append(client.post(url + "/edits/optimized", json={"latent_id": lid, "steps": 5}).status_code)

        threads = [threading.Thread(target=submit) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(codes) == [202] * limit + [429] * (32 - limit), codes
        assert redis_lib.Redis.from_url(redis_server.url).llen("edits") == limit
    finally:
        proc.terminate()
        proc.wait(10)
