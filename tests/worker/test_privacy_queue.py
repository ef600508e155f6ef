"""Delete on request and cancel, through a real Redis and real Celery workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.app.test_privacy import stops_within_two_steps
from tests.worker.conftest import RedisServer, Workers
from worker.service.store import RedisStore

pytestmark = pytest.mark.redis


@pytest.fixture
def api(redis_server: RedisServer, tiny_checkpoint: Path) -> Iterator[TestClient]:
    settings = Settings(checkpoint=tiny_checkpoint, redis_url=redis_server.url, job_orphan_after_s=3)
    with TestClient(create_app(settings)) as client:
        yield client


def _encode(api: TestClient, photos: Path) -> str:
    r = api.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())})
    assert r.status_code == 200, r.text
    return r.json()["latent_id"]  # type: ignore[no-any-return]


def _job(api: TestClient, latent_id: str, steps: int) -> str:
    r = api.post("/edits/optimized", json={"latent_id": latent_id, "steps": steps, "lr": 0.01})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]  # type: ignore[no-any-return]


def _until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def _status(api: TestClient, job_id: str) -> dict[str, Any]:
    return api.get(f"/jobs/{job_id}").json()  # type: ignore[no-any-return]


def redis_mentions(url: str, text: str) -> list[str]:
    """Every key of the Redis whose name or value (strings, lists, sets, hashes, sorted sets,
    streams) mentions `text`: a SCAN over all of them."""
    r = redis.Redis.from_url(url)
    needle, found = text.encode(), []
    for k in r.scan_iter(count=1000):
        kind = r.type(k)
        if kind == b"string":
            values = [r.get(k) or b""]
        elif kind == b"list":
            values = r.lrange(k, 0, -1)
        elif kind == b"set":
            values = list(r.smembers(k))
        elif kind == b"hash":
            values = [b for kv in r.hgetall(k).items() for b in kv]
        elif kind == b"zset":
            values = [m for m, _ in r.zrange(k, 0, -1, withscores=True)]
        elif kind == b"stream":
            values = [repr(r.xrange(k)).encode()]
        else:
            values = []
        if needle in k or any(needle in v for v in values):
            found.append(k.decode(errors="replace"))
    return found


def test_deleting_an_upload_leaves_nothing_of_it_in_redis(
    api: TestClient, workers: Workers, redis_server: RedisServer, photos: Path
) -> None:
    workers.start()
    lid, other = _encode(api, photos), _encode(api, photos)
    done = _job(api, lid, 5)
    _until(lambda: _status(api, done)["status"] == "succeeded", 120, "the first job")
    queued = _job(api, lid, 5)  # a second job, possibly still queued or running when the face goes
    assert redis_mentions(redis_server.url, lid)

    assert api.delete(f"/latents/{lid}").status_code == 204

    assert redis_mentions(redis_server.url, lid) == []
    assert api.app.state.service.faces.cache.get(lid) is None  # type: ignore[attr-defined]
    for job_id in (done, queued):
        body = _until(lambda j=job_id: _status(api, j)["status"] == "failed" and _status(api, j), 30, "failed")
        assert "deleted at its owner's request" in body["error"]
        assert api.get(f"/jobs/{job_id}/result").status_code == 409
    answers = [
        api.post("/edit", params={"latent_id": lid, "attribute": "Smiling"}),
        api.get("/interpolate", params={"from": lid, "to": other}),
        api.post("/edits/optimized", json={"latent_id": lid, "steps": 5}),
        api.delete(f"/latents/{lid}"),
    ]
    assert [r.status_code for r in answers] == [404] * len(answers)
    time.sleep(2)  # whatever the worker was doing with it has stopped and left nothing behind
    assert redis_mentions(redis_server.url, lid) == []
    assert api.post("/edit", params={"latent_id": other, "attribute": "Smiling"}).status_code == 200


def test_a_cancelled_queued_job_never_runs_on_a_celery_worker(api: TestClient, workers: Workers, photos: Path) -> None:
    lid = _encode(api, photos)
    early = _job(api, lid, 5)  # no worker yet: it waits in the queue, and misses the revoke
    assert api.delete(f"/jobs/{early}").json()["status"] == "cancelled"
    proc = workers.start_as_readme(concurrency=1)  # prefork: its main process hears the revoke at once
    long = _job(api, lid, 500)
    _until(lambda: _status(api, long)["step"] > 0, 120, "the long job running")
    waiting = _job(api, lid, 5)  # behind it on the one worker: revoked while it waits
    assert api.delete(f"/jobs/{waiting}").json()["status"] == "cancelled"
    api.delete(f"/jobs/{long}")
    after = _job(api, lid, 5)
    _until(lambda: _status(api, after)["status"] == "succeeded", 120, "the job behind them")
    for job_id in (early, waiting):
        body = _status(api, job_id)
        assert body["status"] == "cancelled" and body["attempts"] == 0, body  # never started
    log = workers.log(proc)
    assert f"Discarding revoked task: faceedit.optimized_edit[{waiting}]" in log, log[-3000:]


@pytest.mark.parametrize("readme", [False, True], ids=["solo", "make-worker"])
def test_a_cancelled_running_job_stops_on_a_celery_worker(
    api: TestClient, workers: Workers, photos: Path, readme: bool
) -> None:
    proc = workers.start_as_readme() if readme else workers.start()
    lid = _encode(api, photos)
    job_id = _job(api, lid, 500)
    _until(lambda: _status(api, job_id)["step"] > 5, 120, "the job running")
    r = api.delete(f"/jobs/{job_id}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    line = _until(
        lambda: next((ln for ln in workers.log(proc).splitlines() if f"job {job_id}: stopped at step" in ln), None),
        60,
        "the worker stopping the job",
    )
    stopped = int(line.split("stopped at step ")[1].split()[0])
    assert stopped < 500, line
    body = _status(api, job_id)
    assert body["status"] == "cancelled" and body["progress"] == 0 and body["step"] == 0, body
    assert api.get(f"/jobs/{job_id}/result").status_code == 409
    nxt = _job(api, lid, 5)  # the worker is free
    _until(lambda: _status(api, nxt)["status"] == "succeeded", 120, "the next job")
    assert _status(api, job_id)["status"] == "cancelled"  # nothing the worker wrote undid it


def test_a_running_job_stops_within_two_steps_with_redis(redis_server: RedisServer) -> None:
    stops_within_two_steps(RedisStore(redis_server.url))
