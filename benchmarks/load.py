"""Load report: 1, 4 and 16 concurrent clients (by default) on /edit and /encode against the
real service (uvicorn; with --redis also a real redis-server as its store), each phase
--seconds long. Prints requests/s, p50/p95/p99, errors and the server's resident memory at the
start, end and peak, and the server's CPU time per request. With --baseline DIR the same cases run,
in the same run, against the service of another checkout (e.g. `git worktree add /tmp/base
<commit>`), for a before/after; with --compare CHECKPOINT, against this service on another model
(the image-to-image editor against the DCGAN, say).

Cases: /edit of an encoded 512 px PNG photo by latent id, answered exactly (the whole photo as a
PNG), as a JPEG (`Accept: image/jpeg`) and as the edited tile (`tile=true`, what the page's
sliders ask for); /encode of an aligned face; /encode of the photo (detection, alignment,
inversion with its refinement).

    python -m benchmarks.load [--clients 1,4,16] [--seconds 20] [--redis] [--baseline DIR]
        [--checkpoint DIR] [--compare CHECKPOINT] [--out report.json]
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
from typing import Any

import httpx

from benchmarks.common import PHOTOS, ROOT, Request, drive, free_port, start_server


def cases(url: str, photo: bytes, new: bool) -> dict[str, Request]:
    enc = httpx.post(url + "/encode", files={"file": ("p.png", photo)}, timeout=60).json()
    aligned = base64.b64decode(enc["aligned"].split(",", 1)[1])
    edit = {"latent_id": enc["latent_id"], "attribute": "Smiling"}
    out: dict[str, Request] = {"/edit (photo, exact)": lambda h: h.post("/edit", params=edit)}
    if new:  # what the baseline did not have
        out["/edit (photo, JPEG)"] = lambda h: h.post("/edit", params=edit, headers={"Accept": "image/jpeg"})
        out["/edit (tile)"] = lambda h: h.post("/edit", params={**edit, "tile": "true"})
    out["/encode (aligned face)"] = lambda h: h.post(
        "/encode", params={"aligned": "true"}, files={"file": ("f.png", aligned)}
    )
    out["/encode (photo)"] = lambda h: h.post("/encode", files={"file": ("p.png", photo)})
    return out


def measure(root: Path, env: dict[str, str], clients: list[int], seconds: float, label: str) -> dict[str, Any]:
    proc, url = start_server({"FACEEDIT_RATE_PER_S": "0", **env}, root=root)  # capacity: no per-client share
    photo = (PHOTOS / "astronaut.png").read_bytes()
    results: dict[str, Any] = {}
    try:
        for name, request in cases(url, photo, new=root == ROOT).items():
            for n in clients:
                r = asyncio.run(drive(url, request, n, seconds=seconds, pid=proc.pid))
                results[f"{name} x{n}"] = r
                line = f"{label:9s} {name:24s} {n:3d} clients {r['rps']:7.1f} req/s  "
                line += f"p50 {r['p50_ms']:7.1f}  p95 {r['p95_ms']:7.1f}  p99 {r['p99_ms']:7.1f} ms  "
                line += f"server CPU {r['server_cpu_ms_per_request']:6.1f} ms/req  "
                line += f"errors {r['errors']}  RSS peak {r.get('rss_max_mb', 0):.0f} MB"
                print(line, flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
    return results


def _label(checkpoint: Path) -> str:
    """A checkpoint's short name: its folder's, or its run's for a run's `checkpoint/`."""
    return (checkpoint.parent.name if checkpoint.name == "checkpoint" else checkpoint.name)[:9]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "celeba64"))
    p.add_argument("--clients", default="1,4,16", help="comma-separated client counts, one phase each")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--redis", action="store_true", help="start a real redis-server as the store")
    p.add_argument("--baseline", type=Path, help="another checkout of the service, measured the same way")
    p.add_argument("--compare", type=Path, help="another checkpoint, served by this checkout, measured the same way")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
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
    report: dict[str, Any] = {"clients": clients, "seconds": args.seconds, "redis": args.redis}
    try:
        if args.baseline:
            report["baseline"] = measure(args.baseline.resolve(), env, clients, args.seconds, "baseline")
        if args.compare:
            other = {**env, "FACEEDIT_CHECKPOINT": str(args.compare)}
            report["compare"] = measure(ROOT, other, clients, args.seconds, _label(args.compare))
        report["results"] = measure(ROOT, env, clients, args.seconds, _label(Path(args.checkpoint)))
    finally:
        if redis_proc:
            redis_proc.terminate()
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
