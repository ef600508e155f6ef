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
    settings = Settings(checkpoint=tiny_checkpoint, redis_url=redis_server.url, max_queue=3)
    with TestClient(create_app(settings)) as client:
        yield client


def _latent(api: TestClient, photos: Path) -> str:
    r = api.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())})
    assert r.status_code == 200, r.text
    return r.json()["latent_id"]  # type: ignore[no-any-return]


def _wait_for(api: TestClient, job_id: str, statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"/jobs/{job_id}").json()
        if body["status"] in statuses:
            return body  # type: ignore[no-any-return]
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


def test_killed_worker_does_not_lose_the_job(api: TestClient, workers: Workers, photos: Path) -> None:
    first = workers.start()
    lid = _latent(api, photos)
    job_id = api.post("/edits/optimized", json={"latent_id": lid, "steps": 500, "lr": 0.01}).json()["job_id"]
    running = _wait_for(api, job_id, {"running", "succeeded"}, 90)
    assert running["status"] == "running", "the job finished before the worker could be killed"
    first.kill()  # SIGKILL mid-job: no chance to ack or clean up
    first.wait(10)
    assert api.get(f"/jobs/{job_id}").json()["status"] == "running"
    workers.start()  # a worker comes back; the unacked job is handed to it
    done = _wait_for(api, job_id, {"succeeded", "failed"}, 120)
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
    assert api.get("/ready").status_code == 200
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
