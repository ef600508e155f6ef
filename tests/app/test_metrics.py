"""GET /metrics: Prometheus text with requests per route template, latency, the queue, the store,
the jobs that ran and the model's load time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for_job


def _samples(client: Any, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_requests_are_counted_per_route_template_and_status(client: Any, photos: Path) -> None:
    enc = client.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())})
    lid = enc.json()["latent_id"]
    for _ in range(2):
        assert client.post("/edit", params={"latent_id": lid, "attribute": "Smiling"}).status_code == 200
    assert client.get("/jobs/nope").status_code == 404
    m = _samples(client)
    edit = ("faceedit_http_requests_total", (("method", "POST"), ("route", "/edit"), ("status", "200")))
    assert m[edit] == 2
    missing = ("faceedit_http_requests_total", (("method", "GET"), ("route", "/jobs/{job_id}"), ("status", "404")))
    assert m[missing] == 1  # the template, not the id: ids never become labels
    assert not any("nope" in str(k) or lid in str(k) for k in m)
    count = ("faceedit_http_request_duration_seconds_count", (("method", "POST"), ("route", "/edit")))
    assert m[count] == 2
    assert m[("faceedit_model_load_seconds", ())] > 0
    assert m[("faceedit_store_bytes", ())] > 1000  # the encoded face is held


def test_jobs_and_the_queue_are_measured(client: Any, photos: Path) -> None:
    lid = client.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())}).json()["latent_id"]
    job = client.post("/edits/optimized", json={"latent_id": lid, "steps": 3}).json()["job_id"]
    assert wait_for_job(client, job)["status"] == "succeeded"
    m = _samples(client)
    assert m[("faceedit_job_duration_seconds_count", (("outcome", "succeeded"),))] == 1
    assert m[("faceedit_job_queue_depth", ())] == 0


def test_a_refused_request_counts_too(make_client: Any) -> None:
    client = make_client(api_key="s3cret")
    assert client.get("/attributes").status_code == 401
    m = _samples(client, **{"X-API-Key": "s3cret"})
    # refused before routing: counted, under no route
    assert m[("faceedit_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "401")))] == 1
    assert client.get("/metrics").status_code == 401  # behind the key like the rest of the API
