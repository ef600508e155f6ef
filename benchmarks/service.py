"""Latency and throughput of the service, started here on loopback, batching on and off.

/edit and /encode on a whole photo and on an already aligned face, and /edit on a latent id
(what the page's sliders send: the user's 512 px photo, a 4000 x 3000 JPEG, or the 64 px
face), under 1 and 16 concurrent clients: p50, p95, requests/s.
The service runs twice, with request batching on (FACEEDIT_BATCH_WAIT_MS=2) and off (0),
and the throughput ratio is printed.

    python benchmarks/service.py [--checkpoint DIR] [--requests 64] [--out report.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.common import PHOTOS, ROOT, Request, drive, start_server


def big_photo(photo: bytes) -> bytes:
    """A 4000 x 3000 phone-sized JPEG with the photo's face in it."""
    im = Image.open(io.BytesIO(photo)).convert("RGB").resize((3000, 3000), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (4000, 3000), (90, 110, 130))
    canvas.paste(im, (500, 0))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def cases(photo: bytes, aligned: bytes, latent_id: str, big_id: str) -> dict[str, Request]:
    edit = {"attribute": "Smiling", "strength": "1.0"}
    return {
        "edit id, 512 photo": lambda h: h.post("/edit", params={**edit, "latent_id": latent_id}),
        "edit id, 4000x3000": lambda h: h.post("/edit", params={**edit, "latent_id": big_id}),
        "edit id, 64 px face": lambda h: h.post("/edit", params={**edit, "latent_id": latent_id, "paste": "false"}),
        "edit aligned face": lambda h: h.post(
            "/edit", params={**edit, "aligned": "true"}, files={"file": ("f.png", aligned)}
        ),
        "edit photo": lambda h: h.post("/edit", params=edit, files={"file": ("p.png", photo)}),
        "edit photo, no refine": lambda h: h.post(
            "/edit", params={**edit, "refine": "false"}, files={"file": ("p.png", photo)}
        ),
        "encode aligned face": lambda h: h.post(
            "/encode", params={"aligned": "true"}, files={"file": ("f.png", aligned)}
        ),
        "encode photo": lambda h: h.post("/encode", files={"file": ("p.png", photo)}),
        "encode photo, no refine": lambda h: h.post(
            "/encode", params={"refine": "false"}, files={"file": ("p.png", photo)}
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "celeba64"))
    p.add_argument("--requests", type=int, default=64, help="requests per case with 16 clients (a quarter with 1)")
    p.add_argument("--out", type=Path)
    p.add_argument("--only", default="", help="run only the cases whose name contains this")
    args = p.parse_args()
    photo = (PHOTOS / "astronaut.png").read_bytes()
    big = big_photo(photo)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, wait_ms in (("batched", "2"), ("unbatched", "0")):
        proc, url = start_server(
            {"FACEEDIT_CHECKPOINT": args.checkpoint, "FACEEDIT_BATCH_WAIT_MS": wait_ms, "FACEEDIT_RATE_PER_S": "0"}
        )
        try:
            enc = httpx.post(url + "/encode", files={"file": ("p.png", photo)}, timeout=30).json()
            aligned = base64.b64decode(enc["aligned"].split(",", 1)[1])
            big_id = httpx.post(url + "/encode", files={"file": ("b.jpg", big)}, timeout=60).json()["latent_id"]
            chosen = {k: v for k, v in cases(photo, aligned, enc["latent_id"], big_id).items() if args.only in k}
            for name, request in chosen.items():
                for clients in (1, 16):
                    total = args.requests if clients > 1 else max(16, args.requests // 4)
                    r = asyncio.run(drive(url, request, clients, total=total))
                    results.setdefault(label, {})[f"{name} x{clients}"] = r
                    print(
                        f"{label:9s} {name:20s} clients={clients:2d}  p50 {r['p50_ms']:7.1f} ms  "
                        f"p95 {r['p95_ms']:7.1f} ms  {r['rps']:7.1f} req/s  errors {r['errors']}",
                        flush=True,
                    )
        finally:
            proc.terminate()
            proc.wait(10)
    print("\nthroughput ratio batched / unbatched:")
    for key, r in results["batched"].items():
        print(f"  {key:26s} {r['rps'] / results['unbatched'][key]['rps']:5.2f}x")
    if args.out:
        args.out.write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
