"""The families' figure for the model card: per family, 8 samples G(z) (same z for all) and the
reconstructions G(E(x)) of 8 held-out faces (the faces themselves are not drawn: CelebA's terms).

    python scripts/family_sheet.py --data ../shared/data/celeba-10k --out docs/families.png \
        dcgan=runs/.../checkpoint wgan-gp=runs/.../checkpoint vae=... vaegan=... bigan=...
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
from models.pixels import to_uint8  # noqa: E402
from training.data import load_celeba, to_model_input  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("models", nargs="+", help="name=checkpoint folder")
    args = p.parse_args()
    data = load_celeba(args.data, 64)
    x = to_model_input(data.tensor()[torch.from_numpy(data.val_idx[:8])], torch.device("cpu"), channels_last=False)
    z = torch.randn(8, 100, generator=torch.Generator().manual_seed(0))
    rows = []
    for spec in args.models:
        name, path = spec.split("=", 1)
        m = load_checkpoint(path)
        assert m.E is not None
        with torch.no_grad():
            imgs = torch.cat([m.G(z[:, : m.cfg.nz]), m.G(m.E(x))])
        tiles = to_uint8(imgs).numpy()
        row = np.concatenate(
            [np.full((64, 96, 3), 255, np.uint8), *tiles[:8], np.full((64, 8, 3), 255, np.uint8), *tiles[8:]], 1
        )
        im = Image.fromarray(row)
        ImageDraw.Draw(im).text((4, 26), name, fill=(0, 0, 0))
        rows.append(np.asarray(im))
    Image.fromarray(np.concatenate(rows, 0)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
