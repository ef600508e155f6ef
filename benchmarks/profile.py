"""Flame graphs of the service under load: py-spy samples the real uvicorn process (every thread,
native frames) while 16 clients send one kind of request. Writes docs/profile-<case>.svg.

    python benchmarks/profile.py [--clients 16] [--seconds 20] [--cases edit,encode]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from benchmarks.common import PHOTOS, ROOT, Request, drive, start_server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "celeba64"))
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--cases", default="edit,encode")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    args = p.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    proc, url = start_server({"FACEEDIT_CHECKPOINT": args.checkpoint, "FACEEDIT_RATE_PER_S": "0"})
    photo = (PHOTOS / "astronaut.png").read_bytes()
    try:
        latent_id = httpx.post(url + "/encode", files={"file": ("p.png", photo)}, timeout=60).json()["latent_id"]
        edit = {"latent_id": latent_id, "attribute": "Smiling"}
        requests: dict[str, Request] = {
            "edit": lambda h: h.post("/edit", params={**edit, "tile": "true"}),  # what the page's sliders send
            "encode": lambda h: h.post("/encode", files={"file": ("p.png", photo)}),
        }
        for case in args.cases.split(","):
            svg = args.out / f"profile-{case}.svg"
            record = [spy, "record", "--pid", str(proc.pid), "--threads", "--rate", "50", "--nonblocking"]
            sampler = subprocess.Popen([*record, "--duration", str(int(args.seconds)), "--output", str(svg)])
            r = asyncio.run(drive(url, requests[case], args.clients, seconds=args.seconds))
            sampler.wait(60)
            print(f"{case}: {r['rps']:.1f} req/s, p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms -> {svg}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
