"""One flooding client against another client's sliders, on the real service (uvicorn, embedded
mode, the bundled model, default settings), the two clients on different loopback addresses
(127.0.0.2 drags a slider, 127.0.0.3 floods).

The slider client edits its stored 512 px photo as the page does while a slider is dragged (a
tile, one request in flight, one move every `--period-ms`); its latency is measured quiet, then
while the flooder, a process of its own (so that its loop does not delay the slider's client),
sends `/encode` uploads as fast as `--flooders` connections allow, ignoring Retry-After.
Printed: the slider's p50 / p95 quiet and flooded and their ratio, the flooder's answers by
status, and the refusals /metrics counted. `--no-share` runs the flood a second time
on a service without per-client shares (FACEEDIT_RATE_PER_S=0), for comparison.

    python -m benchmarks.fairness [--seconds 30] [--flooders 8] [--no-share]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import statistics
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import httpx

from benchmarks.common import PHOTOS, ROOT, start_server

SLIDER, FLOODER = "127.0.0.2", "127.0.0.3"


def client(url: str, address: str, connections: int = 2) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address, limits=httpx.Limits(max_connections=connections))
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=120)


async def slider(http: httpx.AsyncClient, latent_id: str, seconds: float, period_s: float) -> dict[str, Any]:
    """A dragged slider: strength moving -2..2, one tile at a time, a move every `period_s`."""
    latencies, statuses = [], collections.Counter[int]()
    stop, i = time.perf_counter() + seconds, 0
    while time.perf_counter() < stop:
        t = time.perf_counter()
        strength = round(-2 + 4 * ((i * 0.07) % 1), 2)
        r = await http.post(
            "/edit",
            params={"latent_id": latent_id, "attribute": "Smiling", "strength": strength, "tile": "true"},
            headers={"Accept": "image/jpeg"},
        )
        statuses[r.status_code] += 1
        latencies.append(time.perf_counter() - t)
        i += 1
        await asyncio.sleep(max(0.0, period_s - (time.perf_counter() - t)))
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * q[94], 1),
        "statuses": dict(statuses),
    }


def flooder(url: str, connections: int, nice: int, stop: Event, out: Queue[dict[int, int]]) -> None:
    """In a process of its own: `connections` loops of /encode until told to stop; answers by
    status (0: the connection was closed on it, as a 429 does before reading the upload). It
    stands for another machine: `nice` keeps its own loop from taking this machine's CPU from
    the service (what is measured is the service's fairness, not the client's CPU)."""
    os.nice(nice)
    photo = (PHOTOS / "astronaut.png").read_bytes()
    answers: collections.Counter[int] = collections.Counter()

    async def loop(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                r = await http.post("/encode", files={"file": ("p.png", photo)})
                answers[r.status_code] += 1
            except httpx.HTTPError:
                answers[0] += 1

    async def main() -> None:
        async with client(url, FLOODER, connections) as http:
            await asyncio.gather(*(loop(http) for _ in range(connections)))

    asyncio.run(main())
    out.put(dict(answers))


async def run(url: str, seconds: float, flooders: int, nice: int, period_s: float) -> dict[str, Any]:
    photo = (PHOTOS / "astronaut.png").read_bytes()
    async with client(url, SLIDER) as mine:
        r = await mine.post("/encode", files={"file": ("p.png", photo)})
        r.raise_for_status()
        latent_id = r.json()["latent_id"]
        await asyncio.sleep(7)  # the upload's tokens back: both phases start from a full bucket
        await slider(mine, latent_id, 3, period_s)  # warm-up
        quiet = await slider(mine, latent_id, seconds, period_s)
        await asyncio.sleep(7)
        stop, out = multiprocessing.Event(), multiprocessing.Queue()  # type: Event, Queue[dict[int, int]]
        flooding = multiprocessing.Process(target=flooder, args=(url, flooders, nice, stop, out))
        flooding.start()
        await asyncio.sleep(3)  # the flood under way
        flooded = await slider(mine, latent_id, seconds, period_s)
        stop.set()
        answers = out.get(timeout=120)
        flooding.join(30)
        metrics = (await mine.get("/metrics")).text
    refused = [ln for ln in metrics.splitlines() if ln.startswith("faceedit_rate_limited_total")]
    return {
        "quiet": quiet,
        "flooded": flooded,
        "p95_ratio": round(flooded["p95_ms"] / quiet["p95_ms"], 2),
        "flooder_answers": answers,
        "metrics_refusals": refused,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "celeba64"))
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--flooders", type=int, default=8, help="concurrent connections of the flooding client")
    p.add_argument("--period-ms", type=float, default=100, help="time between two slider moves")
    p.add_argument("--flooder-nice", type=int, default=0, help="the flooding process's niceness (0: as the service)")
    p.add_argument("--no-share", action="store_true", help="also flood a service without per-client shares")
    args = p.parse_args()
    report: dict[str, Any] = {}
    runs: list[tuple[str, dict[str, str]]] = [("shares (defaults)", {})]
    if args.no_share:
        runs.append(("no shares", {"FACEEDIT_RATE_PER_S": "0"}))
    for label, env in runs:
        proc, url = start_server({"FACEEDIT_CHECKPOINT": args.checkpoint, **env})
        try:
            report[label] = asyncio.run(run(url, args.seconds, args.flooders, args.flooder_nice, args.period_ms / 1000))
        finally:
            proc.terminate()
            proc.wait(10)
        print(label, json.dumps(report[label], indent=2), flush=True)


if __name__ == "__main__":
    main()
