"""Latency and throughput of the running service, started here on loopback.

For /edit and /encode, on a whole photo and on an already aligned face (and /edit on a
latent id, what the page's sliders send), under 1 and 16 concurrent clients: p50, p95 and
requests/s. The service runs twice, with request batching on and off, and the ratio of
throughputs is printed. Usage:
    python benchmarks/service.py [--checkpoint DIR] [--requests 64] [--out report.json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "photos" / "astronaut.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(checkpoint: str, batch_wait_ms: float, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "FACEEDIT_CHECKPOINT": checkpoint,
        "FACEEDIT_BATCH_WAIT_MS": str(batch_wait_ms),
        "FACEEDIT_TORCH_THREADS": str(threads),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the service did not start")


async def load(url: str, make_request, clients: int, total: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for _ in counter:
            t = time.perf_counter()
            r = await make_request(http)
            latencies.append(time.perf_counter() - t)
            errors += r.status_code != 200

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        await make_request(http)  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=20)
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * q[18],
        "rps": total / elapsed,
        "errors": errors,
    }


def cases(photo: bytes, aligned: bytes, latent_id: str) -> dict[str, object]:
    edit = {"attribute": "Smiling", "strength": "1.0"}
    return {
        "edit latent_id": lambda h: h.post("/edit", params={**edit, "latent_id": latent_id}),
        "edit aligned face": lambda h: h.post(
            "/edit", params={**edit, "aligned": "true"}, files={"file": ("f.png", aligned)}
        ),
        "edit photo": lambda h: h.post("/edit", params=edit, files={"file": ("p.png", photo)}),
        "encode aligned face": lambda h: h.post(
            "/encode", params={"aligned": "true"}, files={"file": ("f.png", aligned)}
        ),
        "encode photo": lambda h: h.post("/encode", files={"file": ("p.png", photo)}),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "celeba64"))
    p.add_argument("--requests", type=int, default=64, help="requests per case and concurrency")
    p.add_argument("--threads", type=int, default=0, help="torch threads in the server (0: default)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    photo = PHOTO.read_bytes()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, wait_ms in (("batched", 2.0), ("unbatched", 0.0)):
        proc, url = start_server(args.checkpoint, wait_ms, args.threads)
        try:
            enc = httpx.post(url + "/encode", files={"file": ("p.png", photo)}, timeout=30).json()
            aligned = enc["aligned"].split(",", 1)[1]
            import base64

            aligned_png = base64.b64decode(aligned)
            assert Image.open(io.BytesIO(aligned_png)).size[0] > 0
            for name, make in cases(photo, aligned_png, enc["latent_id"]).items():
                for clients in (1, 16):
                    total = args.requests if clients > 1 else max(16, args.requests // 4)
                    r = asyncio.run(load(url, make, clients, total))
                    results.setdefault(label, {})[f"{name} x{clients}"] = r
                    print(
                        f"{label:9s} {name:22s} clients={clients:2d}  p50 {r['p50_ms']:7.1f} ms  "
                        f"p95 {r['p95_ms']:7.1f} ms  {r['rps']:7.1f} req/s  errors {r['errors']}",
                        flush=True,
                    )
        finally:
            proc.terminate()
            proc.wait(10)
    print("\nthroughput ratio batched / unbatched:")
    for key in results["batched"]:
        ratio = results["batched"][key]["rps"] / results["unbatched"][key]["rps"]
        print(f"  {key:28s} {ratio:5.2f}x")
    if args.out:
        args.out.write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
