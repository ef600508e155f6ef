"""The encoder study's loss table: each encoder (fc, conv, transfer) x each loss (l2, l1, ssim),
trained for the same budget against one frozen G, scored on the held-out faces.

    python scripts/encoder_table.py --data ../shared/data/celeba-10k --gan runs/00000-*/checkpoint --kimg 6
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import load_checkpoint  # noqa: E402
from training.data import load_celeba  # noqa: E402
from training.encoder import EncoderOptions, train_encoder  # noqa: E402

KINDS = ("fc", "conv", "transfer")
LOSSES = ("l2", "l1", "ssim")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--gan", type=Path, required=True)
    p.add_argument("--kimg", type=float, default=6.0)
    p.add_argument("--outdir", type=Path, default=Path("runs/encoder-table"))
    p.add_argument("--out", type=Path, default=Path("runs/encoder-table/table.json"))
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    size = load_checkpoint(args.gan, parts=("G",)).cfg.image_size
    data = load_celeba(args.data, size)
    rows = []
    for kind in KINDS:
        for loss in LOSSES:
            opts = EncoderOptions(
                data=args.data,
                gan=args.gan,
                outdir=args.outdir,
                encoder=kind,
                loss=loss,
                kimg=args.kimg,
                snapshot_every=10**9,
                device=args.device,
            )
            run = train_encoder(opts, data)
            metrics = load_checkpoint(run / "checkpoint").meta["metrics"]["encoder_val"]
            rows.append({"encoder": kind, "loss": loss, "run": str(run), **metrics})
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| encoder | train loss | val L2 | val L1 | val SSIM |", "|---|---|---|---|---|"]
    lines += [f"| {r['encoder']} | {r['loss']} | {r['l2']:.4f} | {r['l1']:.4f} | {r['ssim']:.4f} |" for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
