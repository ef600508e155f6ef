"""Memory under many big photos: N concurrent `/edit?paste=true` uploads of a small PNG that
decodes to 39 Mpx, against the real service (uvicorn, embedded mode). Prints the API's RSS
idle and at its peak, the answers by status, and `/health`'s latency sampled throughout.

    python benchmarks/memory.py [--clients 48] [--checkpoint DIR] [--out report.json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import time
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


async def run(url: str, pid: int, upload: bytes, clients: int) -> dict[str, object]:
    statuses: dict[int, int] = {}
    health_ms: list[float] = []
    slow: list[tuple[float, float]] = []  # (seconds since the start, ms) of /health answers over 100 ms
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
            health_ms.append(1000 * (time.perf_counter() - t))
            if health_ms[-1] > 100:
                slow.append((round(t - t0, 1), round(health_ms[-1])))
            rss.append(rss_mb(pid))
            await asyncio.sleep(0.1)

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=clients + 4)) as http:
        watcher = asyncio.create_task(watch(http))
        await asyncio.gather(*(paste(http) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
        done.set()
        await watcher
    return {
        "clients": clients,
        "upload_bytes": len(upload),
        "seconds": round(elapsed, 1),
        "statuses": statuses,
        "rss_idle_mb": round(rss[0]),
        "rss_peak_mb": round(max(rss)),
        "rss_growth_mb": round(max(rss) - rss[0]),
        "health_p50_ms": round(statistics.median(health_ms), 1),
        "health_max_ms": round(max(health_ms), 1),
        "health_over_100ms": slow,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "celeba64"))
    p.add_argument("--clients", type=int, default=48)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    upload = huge_png((PHOTOS / "astronaut.png").read_bytes())
    proc, url = start_server({"FACEEDIT_CHECKPOINT": args.checkpoint})
    try:
        report = asyncio.run(run(url, proc.pid, upload, args.clients))
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
