"""Export a trained checkpoint for shipping: fp16 weights, G's EMA + D + E + directions.

    python scripts/export_checkpoint.py runs/00003-encoder-.../checkpoint checkpoints/celeba64 \
        --default-strength 1.5 --report report.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import load_checkpoint, save_checkpoint  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--default-strength", type=float, default=None)
    p.add_argument("--report", type=Path, help="evaluate's report.json, stored under metrics.evaluate")
    args = p.parse_args()
    model = load_checkpoint(args.source)
    if model.E is None or model.D is None or model.directions is None:
        sys.exit(f"{args.source}: needs G, D, E and directions (run `encoder` and `attributes` first)")
    if args.default_strength is not None:
        model.meta["default_strength"] = args.default_strength
    if args.report:
        report = json.loads(args.report.read_text())
        model.meta.setdefault("metrics", {})["evaluate"] = {
            k: report[k] for k in ("faces", "strength", "reconstruction", "edits")
        }
    model.meta["license"] = "Trained on CelebA: non-commercial research use only (Liu et al., ICCV 2015)"
    save_checkpoint(args.dest, model, half=True)
    size = sum(f.stat().st_size for f in args.dest.iterdir()) / 2**20
    print(f"wrote {args.dest} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
