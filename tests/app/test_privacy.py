"""Delete on request and cancel a job, in the embedded mode (in-memory store, the local pool)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import wait_for_job
from worker.pipeline.errors import Unavailable
from worker.service.jobs import CANCELLED_ERROR, JobRecord, Running, end_job, read_job, run_job, write_job
from worker.service.settings import CoreSettings
from worker.service.store import MemoryStore, Store


def _encode(client: TestClient, photos: Path) -> str:
    r = client.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())})
    assert r.status_code == 200, r.text
    return r.json()["latent_id"]  # type: ignore[no-any-return]


def _job(client: TestClient, latent_id: str, steps: int) -> str:
    r = client.post("/edits/optimized", json={"latent_id": latent_id, "steps": steps, "lr": 0.01})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]  # type: ignore[no-any-return]


def _wait(client: TestClient, job_id: str, ok: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if ok(body):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}: condition not met in {timeout} s")


def memory_mentions(store: MemoryStore, text: str) -> list[str]:
    """Keys of the in-memory store whose name or value mentions `text`."""
    needle = text.encode()
    return [k for k, (_, v, _) in store._data.items() if text in k or needle in v]


def test_deleting_an_upload_removes_every_trace_and_every_route_answers_404(client: TestClient, photos: Path) -> None:
    lid, other = _encode(client, photos), _encode(client, photos)
    done = wait_for_job(client, _job(client, lid, 5))
    assert done["status"] == "succeeded"
    running = _job(client, lid, 500)
    _wait(client, running, lambda b: b["status"] == "running")
    service = client.app.state.service  # type: ignore[attr-defined]
    store: MemoryStore = service.store
    assert memory_mentions(store, lid) and service.faces.cache.get(lid) is not None

    assert client.delete(f"/latents/{lid}").status_code == 204

    assert memory_mentions(store, lid) == [] and service.faces.cache.get(lid) is None
    for job_id in (done["id"], running):  # the finished job's result (the user's photo) goes too
        body = client.get(f"/jobs/{job_id}").json()
        assert body["status"] == "failed" and "deleted at its owner's request" in body["error"], body
        assert client.get(f"/jobs/{job_id}/result").status_code == 409
    answers = [
        client.post("/edit", params={"latent_id": lid, "attribute": "Smiling"}),
        client.post("/edit", params={"latent_id": lid, "attribute": "Smiling", "paste": "false"}),
        client.get("/interpolate", params={"from": lid, "to": other}),
        client.get("/interpolate", params={"from": other, "to": lid}),
        client.post("/edits/optimized", json={"latent_id": lid, "steps": 5}),
        client.post("/edits/optimized", json={"latent_id": other, "target_id": lid, "steps": 5}),
        client.delete(f"/latents/{lid}"),
    ]
    assert [r.status_code for r in answers] == [404] * len(answers), [r.text for r in answers]
    time.sleep(1)  # the running job stopped: nothing of the face came back
    assert memory_mentions(store, lid) == []
    # the other face is untouched
    assert client.post("/edit", params={"latent_id": other, "attribute": "Smiling"}).status_code == 200


def test_unknown_uploads_are_404_to_delete(client: TestClient) -> None:
    assert client.delete("/latents/nope").status_code == 404


def test_a_cancelled_queued_job_never_starts_and_a_running_one_stops(make_client: Any, photos: Path) -> None:
    client = make_client(local_workers=1)
    lid = _encode(client, photos)
    first, second = _job(client, lid, 500), _job(client, lid, 5)  # one worker: the second waits
    _wait(client, first, lambda b: b["status"] == "running" and b["step"] > 0)
    r = client.delete(f"/jobs/{second}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    r = client.delete(f"/jobs/{first}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    third = _job(client, lid, 5)  # the worker is free again at once, not after 500 steps
    assert wait_for_job(client, third, timeout=60)["status"] == "succeeded"
    for job_id in (first, second):
        body = client.get(f"/jobs/{job_id}").json()
        assert body["status"] == "cancelled" and body["error"] == CANCELLED_ERROR, body
        assert body["progress"] == 0 and body["step"] == 0
        assert client.get(f"/jobs/{job_id}/result").status_code == 409
    assert client.get(f"/jobs/{second}").json()["attempts"] == 0  # never started
    store = client.app.state.service.store  # type: ignore[attr-defined]
    assert store.get(f"result:{first}") is None and store.get(f"result:{second}") is None
    assert client.delete("/jobs/nope").status_code == 404
    # cancelling an ended job removes its result
    assert client.get(f"/jobs/{third}/result").status_code == 200
    assert client.delete(f"/jobs/{third}").json()["status"] == "cancelled"
    assert client.get(f"/jobs/{third}/result").status_code == 409


def stops_within_two_steps(store: Store) -> None:
    """The job's work reads its record at every step: cancelled at step 10, it runs no step after
    the next. Shared by the memory store here and a real Redis in tests/worker."""
    now = time.time()
    params = {"latent_id": "f", "steps": 100, "lr": 0.01, "lambda1": 0.0, "lambda2": 0.0}
    write_job(store, JobRecord(id="c", steps=100, created_at=now, updated_at=now, params=params), 60)
    ran: list[int] = []

    def work(running: Running) -> bytes:
        for step in range(1, 101):
            running.progress(step, 100)
            ran.append(step)
            if step == 10:
                end_job(store, "c", "cancelled", CANCELLED_ERROR, 60)
        return b"result"

    run_job("c", store, CoreSettings(), work)
    assert ran[-1] <= 12, ran[-1]
    job = read_job(store, "c")
    assert job is not None and job.status == "cancelled" and job.step == 0
    assert store.get("result:c") is None


def test_a_running_job_stops_within_two_steps_of_its_cancellation() -> None:
    stops_within_two_steps(MemoryStore())


def test_a_store_blip_is_not_a_cancellation() -> None:
    class Blinking(MemoryStore):
        blink = False

        def get(self, key: str) -> bytes | None:
            if self.blink:
                raise Unavailable("blink")
            return super().get(key)

    store = Blinking()
    now = time.time()
    params = {"latent_id": "f", "steps": 10, "lr": 0.01, "lambda1": 0.0, "lambda2": 0.0}
    write_job(store, JobRecord(id="b", steps=10, created_at=now, updated_at=now, params=params), 60)

    def work(running: Running) -> bytes:
        for step in range(1, 11):
            store.blink = 3 <= step <= 6
            running.progress(step, 10)
        store.blink = False
        return b"done"

    run_job("b", store, CoreSettings(), work)
    job = read_job(store, "b")
    assert job is not None and job.status == "succeeded" and store.get("result:b") == b"done"
