"""Load report: 32 concurrent clients for 60 s each on /edit and /encode against the real
service (uvicorn; with --redis also a real redis-server as its store). Prints requests/s,
p50/p95/p99, errors and the server's resident memory at the start, end and peak, and at the
start, peak and end of every minute (run --seconds 300 to see whether it stays flat).

    python benchmarks/load.py [--checkpoint DIR] [--clients 32] [--seconds 60] [--redis] [--out report.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx

from benchmarks.common import PHOTOS, ROOT, drive, free_port, start_server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "celeba64"))
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--redis", action="store_true", help="start a real redis-server as the store")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    env = {"FACEEDIT_CHECKPOINT": args.checkpoint}
    redis_proc = None
    if args.redis:
        port = free_port()
        redis_proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(port),
                "--save",
                "",
                "--dir",
                tempfile.mkdtemp(),
            ],
            stdout=subprocess.DEVNULL,
        )
        env["FACEEDIT_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    proc, url = start_server(env)
    photo = (PHOTOS / "astronaut.png").read_bytes()
    results = {}
    try:
        enc = httpx.post(url + "/encode", files={"file": ("p.png", photo)}, timeout=30).json()
        aligned = base64.b64decode(enc["aligned"].split(",", 1)[1])
        cases = {
            "/edit (latent id, photo)": lambda h: h.post(
                "/edit", params={"latent_id": enc["latent_id"], "attribute": "Smiling"}
            ),
            "/encode (aligned face)": lambda h: h.post(
                "/encode", params={"aligned": "true"}, files={"file": ("f.png", aligned)}
            ),
            "/encode (photo)": lambda h: h.post("/encode", files={"file": ("p.png", photo)}),
        }
        for name, request in cases.items():
            r = asyncio.run(drive(url, request, args.clients, seconds=args.seconds, pid=proc.pid))
            results[name] = r
            line = f"{name:24s} {r['requests']:6d} req  {r['rps']:7.1f} req/s  "
            line += f"p50 {r['p50_ms']:7.1f}  p95 {r['p95_ms']:7.1f}  p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}  "
            line += f"RSS {r['rss_start_mb']:.0f} -> {r['rss_end_mb']:.0f} MB (peak {r['rss_max_mb']:.0f})"
            print(line, flush=True)
            for i, (start, peak, end) in enumerate(r["rss_by_minute_mb"]):
                print(f"    minute {i + 1}: RSS start {start:.0f}  max {peak:.0f}  end {end:.0f} MB", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
        if redis_proc:
            redis_proc.terminate()
    if args.out:
        args.out.write_text(
            json.dumps(
                {"clients": args.clients, "seconds": args.seconds, "redis": args.redis, "results": results}, indent=2
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
