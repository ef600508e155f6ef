"""Each client's share: a token bucket per API key or address, weighted by route cost (429, Retry-After)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.middleware import TokenBuckets, route_cost


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=60, max_clients=2, clock=clock)
    assert buckets.take("a", 15) == 0 and buckets.take("a", 15) == 0 and buckets.take("a", 15) == 0
    assert buckets.take("a", 15) == 0  # 60 used: empty
    assert buckets.take("a", 15) == 1.5  # 15 tokens at 10 a second
    assert buckets.take("b", 1) == 0  # another client has its own
    clock.now = 1.5
    assert buckets.take("a", 15) == 0
    clock.now = 1000
    assert [buckets.take("a", 15) for _ in range(5)] == [0, 0, 0, 0, 1.5]  # never more than the burst
    assert buckets.take("c", 500) == 0  # a cost over the burst costs the burst: it can pass
    buckets.take("d", 1)
    assert len(buckets._buckets) == 2  # the least recently seen are forgotten past max_clients


def test_route_costs() -> None:
    assert route_cost("POST", "/encode", b"multipart/form-data; boundary=x") == ("upload", 15)
    assert route_cost("POST", "/edit", b"multipart/form-data; boundary=x") == ("upload", 15)
    assert route_cost("POST", "/edit", b"") == ("edit", 1)
    assert route_cost("GET", "/jobs/abc", b"")[1] < 1  # type: ignore[index]
    for free in (("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("DELETE", "/latents/x"), ("GET", "/")):
        assert route_cost(*free, b"") is None
    assert route_cost("DELETE", "/jobs/x", b"") is None


def _encode(client: TestClient, photos: Path) -> Any:
    return client.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())})


def test_a_flooding_client_gets_429_with_retry_after_and_others_do_not(make_client: Any, photos: Path) -> None:
    client = make_client(rate_per_s=1, rate_burst=20)
    first = _encode(client, photos)
    assert first.status_code == 200
    lid = first.json()["latent_id"]
    refused = _encode(client, photos)  # 5 tokens left, 15 asked: 10 s at 1 a second
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 10, refused.headers
    assert refused.json()["retry_after_s"] == 10
    assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200  # free
    other = TestClient(client.app, client=("192.0.2.7", 40000))  # another address: its own bucket
    assert other.post("/edit", params={"latent_id": lid, "attribute": "Smiling"}).status_code == 200
    assert client.delete(f"/latents/{lid}").status_code == 204  # deleting is never refused
    metrics = client.get("/metrics").text
    assert 'faceedit_rate_limited_total{route_class="upload"} 1.0' in metrics


def test_with_an_api_key_the_key_holders_share_one_bucket(make_client: Any, photos: Path) -> None:
    client = make_client(api_key="k", rate_per_s=1, rate_burst=20)
    headers = {"X-API-Key": "k"}
    assert client.get("/attributes", headers=headers).status_code == 200
    other = TestClient(client.app, client=("192.0.2.7", 40000))
    for _ in range(39):
        other.get("/attributes", headers=headers)  # 0.5 each: the shared bucket is empty
    assert other.get("/attributes", headers=headers).status_code == 429
    assert client.get("/attributes", headers=headers).status_code == 429
    assert client.get("/attributes").status_code == 401  # the key is checked first


def test_zero_rate_turns_it_off(make_client: Any) -> None:
    client = make_client(rate_per_s=0)
    assert all(client.get("/attributes").status_code == 200 for _ in range(200))
