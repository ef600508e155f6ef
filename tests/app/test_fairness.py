"""Each client's share: a token bucket per API key or address, weighted by route cost (429, Retry-After)."""

from __future__ import annotations

import time
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
    buckets = TokenBuckets(rate=10, burst=120, max_clients=2, clock=clock)
    assert [buckets.take("a", 60) for _ in range(3)] == [0, 0, 6]  # two uploads, then 6 s to wait
    assert buckets.take("b", 1) == 0  # another client has its own
    clock.now = 6
    assert buckets.take("a", 60) == 0
    clock.now = 1000
    assert [buckets.take("a", 1) for _ in range(121)][-1] == 0.1  # never more than the burst
    assert buckets.take("c", 500) == 0  # a cost over the burst costs the burst: it can pass
    buckets.take("d", 1)
    assert len(buckets._buckets) == 2  # the least recently seen are forgotten past max_clients


def test_a_request_short_of_tokens_by_less_than_the_delay_waits_for_them() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=10, max_clients=10, max_delay=1.0, clock=clock)
    assert buckets.take("a", 10) == 0
    assert buckets.take("a", 5) == 0.5  # taken on credit: it runs in 0.5 s
    assert buckets.take("a", 5) == 1.0  # and the next after the first has been paid back
    assert buckets.take("a", 5) == 1.5  # past the delay: refused, nothing taken
    clock.now = 1.0
    assert buckets.take("a", 5) == 0.5


def test_route_costs() -> None:
    assert route_cost("POST", "/encode", b"multipart/form-data; boundary=x") == ("upload", 60)
    assert route_cost("POST", "/edit", b"multipart/form-data; boundary=x") == ("upload", 60)
    assert route_cost("POST", "/edit", b"") == ("edit", 1)
    assert route_cost("GET", "/jobs/abc", b"")[1] < 1  # type: ignore[index]
    for free in (("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("DELETE", "/latents/x"), ("GET", "/")):
        assert route_cost(*free, b"") is None
    assert route_cost("DELETE", "/jobs/x", b"") is None


def _encode(client: TestClient, photos: Path) -> Any:
    return client.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())})


def test_a_flooding_client_gets_429_with_retry_after_and_others_do_not(make_client: Any, photos: Path) -> None:
    client = make_client(rate_per_s=1, rate_burst=100, rate_max_delay_s=0.5)
    first = _encode(client, photos)
    assert first.status_code == 200
    lid = first.json()["latent_id"]
    start = time.monotonic()
    refused = _encode(client, photos)  # 40 tokens left, 60 asked: 20 s at 1 a second
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 20, refused.headers
    assert refused.json()["retry_after_s"] == 20 and time.monotonic() - start >= 0.5  # answered after the delay
    assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200  # free
    other = TestClient(client.app, client=("192.0.2.7", 40000))  # another address: its own bucket
    assert other.post("/edit", params={"latent_id": lid, "attribute": "Smiling"}).status_code == 200
    assert client.delete(f"/latents/{lid}").status_code == 204  # deleting is never refused
    metrics = client.get("/metrics").text
    assert 'faceedit_rate_limited_total{route_class="upload"} 1.0' in metrics


def test_with_an_api_key_the_key_holders_share_one_bucket(make_client: Any, photos: Path) -> None:
    # refilled slowly enough that a busy machine's slow loop below does not refill it (was rate 1: flaky)
    client = make_client(api_key="k", rate_per_s=0.01, rate_burst=20, rate_max_delay_s=0)
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
