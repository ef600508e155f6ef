"""Export a trained checkpoint for shipping: fp16 weights and the licence of the faces it learnt.

A latent model ships G's EMA + D + E + directions; an image-to-image editor (`editnet`) ships G's
EMA + D, calibrated (`python -m training editor-calibrate`).

    python scripts/export_checkpoint.py runs/00003-encoder-.../checkpoint checkpoints/celeba64 \
        --default-strength 1.5 --report report.json
    python scripts/export_checkpoint.py runs/editor64-cal checkpoints/editor64
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import load_checkpoint, save_checkpoint  # noqa: E402
from models.checkpoint import family_of, load_editor, save_editor  # noqa: E402

LICENSE = "Trained on CelebA: non-commercial research use only (Liu et al., ICCV 2015)"


def export_editor(source: Path, dest: Path) -> None:
    model = load_editor(source)
    if model.D is None or not model.calibrations:
        sys.exit(f"{source}: needs D and a calibration (run `editor-calibrate` on the run's checkpoint first)")
    model.meta["license"] = LICENSE
    save_editor(dest, model, half=True)


def export_latent(source: Path, dest: Path, default_strength: float | None, report_path: Path | None) -> None:
    model = load_checkpoint(source)
    if model.E is None or model.D is None or model.directions is None:
        sys.exit(f"{source}: needs G, D, E and directions (run `encoder` and `attributes` first)")
    if default_strength is not None:
        model.meta["default_strength"] = default_strength
    if report_path:
        report = json.loads(report_path.read_text())
        model.meta.setdefault("metrics", {})["evaluate"] = {
            k: report[k] for k in ("faces", "strength", "reconstruction", "edits")
        }
    model.meta["license"] = LICENSE
    save_checkpoint(dest, model, half=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--default-strength", type=float, default=None, help="latent models only")
    p.add_argument("--report", type=Path, help="latent models: evaluate's report.json, kept in metrics")
    args = p.parse_args()
    if family_of(args.source) == "editnet":
        if args.default_strength is not None or args.report:
            sys.exit("an editor's strength 1 is its calibration: --default-strength and --report are for latent models")
        export_editor(args.source, args.dest)
    else:
        export_latent(args.source, args.dest, args.default_strength, args.report)
    size = sum(f.stat().st_size for f in args.dest.iterdir()) / 2**20
    print(f"wrote {args.dest} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
