"""Memory under many big photos: N concurrent `/edit?paste=true` uploads of a small PNG that
decodes to 39 Mpx, against the real service (uvicorn, embedded mode). Prints the API's RSS
idle and at its peak, the answers by status, and `/health`'s latency sampled throughout, twice:
from the load's own event loop (which also carries the 48 uploads and answers, so its figures
include the client's delays) and from a prober process of its own (the service's figure).

With `--memory-limit BYTES` the service runs under that one limit (FACEEDIT_MEMORY_LIMIT_BYTES):
its photo memory, face cache and store are derived from it (printed, from /ready), and the peak
RSS (the kernel's high-water mark, VmHWM) is printed against it.

    python benchmarks/memory.py [--clients 48] [--memory-limit 1500000000] [--checkpoint DIR] [--out report.json]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import multiprocessing
import statistics
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.common import PHOTOS, ROOT, rss_mb, start_server


def huge_png(photo: bytes, size: tuple[int, int] = (7200, 5400)) -> bytes:
    """A flat 39 Mpx canvas with the photo's face in it: a small file, a huge decode."""
    face = Image.open(io.BytesIO(photo)).convert("RGB").resize((1600, 1600), Image.Resampling.NEAREST)
    canvas = Image.new("RGB", size, (90, 110, 130))
    canvas.paste(face, (2800, 1900))
    buf = io.BytesIO()
    canvas.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def probe_health(port: int, stop: Event, out: Queue[list[tuple[float, float]]]) -> None:
    """In a process of its own: GET /health every 0.1 s on a kept-alive connection until told to stop."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0, samples = time.perf_counter(), []
    while not stop.is_set():
        t = time.perf_counter()
        conn.request("GET", "/health")
        conn.getresponse().read()
        samples.append((round(t - t0, 1), 1000 * (time.perf_counter() - t)))
        time.sleep(0.1)
    out.put(samples)


def health_figures(samples: list[tuple[float, float]], prefix: str) -> dict[str, object]:
    ms = [m for _, m in samples]
    return {
        f"{prefix}p50_ms": round(statistics.median(ms), 1),
        f"{prefix}max_ms": round(max(ms), 1),
        f"{prefix}over_100ms": [(t, round(m)) for t, m in samples if m > 100],
    }


async def run(url: str, pid: int, upload: bytes, clients: int) -> dict[str, object]:
    statuses: dict[int, int] = {}
    health: list[tuple[float, float]] = []  # (seconds since the start, ms), from this event loop
    rss: list[float] = [rss_mb(pid)]
    done = asyncio.Event()

    async def paste(http: httpx.AsyncClient) -> None:
        params = {"attribute": "Smiling", "paste": "true"}
        r = await http.post("/edit", params=params, files={"file": ("p.png", upload)})
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    async def watch(http: httpx.AsyncClient) -> None:
        while not done.is_set():
            t = time.perf_counter()
            await http.get("/health")
            health.append((round(t - t0, 1), 1000 * (time.perf_counter() - t)))
            rss.append(rss_mb(pid))
            await asyncio.sleep(0.1)

    stop, out = multiprocessing.Event(), multiprocessing.Queue()  # type: Event, Queue[list[tuple[float, float]]]
    prober = multiprocessing.Process(target=probe_health, args=(int(url.rsplit(":", 1)[1]), stop, out))
    prober.start()
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=clients + 4)) as http:
        watcher = asyncio.create_task(watch(http))
        await asyncio.gather(*(paste(http) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
        done.set()
        await watcher
    stop.set()
    probed = out.get(timeout=120)
    prober.join(30)
    return {
        "clients": clients,
        "upload_bytes": len(upload),
        "seconds": round(elapsed, 1),
        "statuses": statuses,
        "rss_idle_mb": round(rss[0]),
        "rss_peak_mb": round(max(rss)),
        "rss_growth_mb": round(max(rss) - rss[0]),
        "rss_high_water_mb": round(high_water_mb(pid)),
        **health_figures(probed, "health_"),
        **health_figures(health, "health_from_load_loop_"),
    }


def high_water_mb(pid: int) -> float:
    """The process's peak RSS since it started (VmHWM): no peak between two samples is missed."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "celeba64"))
    p.add_argument("--clients", type=int, default=48)
    p.add_argument("--memory-limit", type=int, help="FACEEDIT_MEMORY_LIMIT_BYTES for the service")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    upload = huge_png((PHOTOS / "astronaut.png").read_bytes())
    env = {"FACEEDIT_CHECKPOINT": args.checkpoint, "FACEEDIT_RATE_PER_S": "0"}  # one client: no share
    if args.memory_limit:
        env["FACEEDIT_MEMORY_LIMIT_BYTES"] = str(args.memory_limit)
    proc, url = start_server(env)
    try:
        ready = httpx.get(url + "/ready").json()
        report = asyncio.run(run(url, proc.pid, upload, args.clients))
        report["memory"] = {k: v for k, v in ready.items() if "memory" in k or k.endswith("_bytes")}
        if args.memory_limit:
            report["rss_high_water_under_limit"] = high_water_mb(proc.pid) * 2**20 < args.memory_limit
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
