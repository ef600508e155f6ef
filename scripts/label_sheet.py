"""What the conditional family's labels do, for the model card: for 8 samples (fixed z and y), one
row per attribute with that attribute's label set to -1 (has not) and then +1 (has), the rest kept.

    python scripts/label_sheet.py CHECKPOINT_OR_RUN_SNAPSHOT --out docs/cgan-labels.png \
        --judge runs/classifier

With --judge, it also prints how often the attribute classifier sees each attribute on 256
samples with that label at -1 and at +1, the rest kept: how much G listens to its labels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import load_checkpoint  # noqa: E402
from models.networks import ModelConfig, sample_latents  # noqa: E402
from models.pixels import to_uint8  # noqa: E402
from training.classifier import load_classifier  # noqa: E402

ATTRIBUTES = ("Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--judge", type=Path, help="an attribute classifier folder (python -m training classifier)")
    args = p.parse_args()
    m = load_checkpoint(args.checkpoint, parts=("G",))
    cfg = m.cfg
    if not cfg.conditions:
        raise SystemExit(f"{args.checkpoint}: not a conditional model")
    w = sample_latents(m.G, args.n, torch.Generator().manual_seed(0))
    rows = []
    for name in ATTRIBUTES:
        k = cfg.nz + cfg.conditions.index(name)
        off, on = w.clone(), w.clone()
        off[:, k], on[:, k] = -1.0, 1.0
        with torch.no_grad():
            imgs = m.G(torch.cat([off, on]))
        tiles = to_uint8(imgs).numpy()
        pairs = [
            np.concatenate([tiles[i], tiles[args.n + i], np.full((64, 6, 3), 255, np.uint8)], 1) for i in range(args.n)
        ]
        im = Image.fromarray(np.concatenate([np.full((64, 90, 3), 255, np.uint8), *pairs], 1))
        ImageDraw.Draw(im).text((4, 26), f"{name} -/+", fill=(0, 0, 0))
        rows.append(np.asarray(im))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out)
    print(f"wrote {args.out}")
    if args.judge:
        judge(m.G, cfg, args.judge)


def judge(G: torch.nn.Module, cfg: ModelConfig, classifier: Path, n: int = 256) -> None:
    clf, meta = load_classifier(classifier)
    names = list(meta["names"])  # type: ignore[call-overload]
    w = sample_latents(G, n, torch.Generator().manual_seed(1))
    print(f"attribute seen by the classifier, {n} samples, label -1 -> +1")
    for name in ATTRIBUTES:
        k = cfg.nz + cfg.conditions.index(name)
        rates = []
        for value in (-1.0, 1.0):
            v = w.clone()
            v[:, k] = value
            with torch.no_grad():
                rates.append((clf(G(v))[:, names.index(name)] > 0).float().mean().item())
        print(f"  {name:11s} {rates[0]:5.1%} -> {rates[1]:5.1%}")


if __name__ == "__main__":
    main()
