"""Aligned face sets packed small enough to travel to a machine that has no `../shared`.

A lent GPU machine gets the working tree and what `carry` names, 64 MiB in all, and nothing else:
not the photo folders, and no network to fetch them. `python -m training pack` writes each
folder's aligned training faces (`training.folders`, the held-out faces of its split left out, so
none of the people `evaluate` judges here can be trained on there) as a packed folder:

- `pack.json`: the version, the crop size and face geometry, attribute names, source files;
- `faces-NNN.webp`: the faces, 16 x 16 to an atlas (lossy WebP at `--quality`);
- `arrays.npz`: validity masks (bit-packed), labels, which labels are known, identities.

A packed folder is a training set like any other folder: `--data` / `--folders` accept it, and
`training.folders.align_folder` reads it back instead of aligning (`training.folders.read_pack`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models.geometry import CELEBA, GEOMETRIES, FaceGeometry
from training.folders import GRID, PACK_FILE, PACK_VERSION, AlignedSet, DataOptions, align_folder, split_set

QUALITY = 75  # WebP quality: the three sets at 128 px, 6,000 faces each, in 25 MiB


@dataclass(frozen=True, kw_only=True)
class PackOptions(DataOptions):
    out: Path  # one packed folder per set is written under it, named after the set's folder
    image_size: int = 128
    quality: int = QUALITY  # WebP quality of the atlases
    max_faces: int | None = None  # per set, a random choice of its training faces
    workers: int = 1  # processes aligning the photos (once: the aligned sets are cached)
    geometry: str = "celeba"  # the crop: celeba (the latent models') or head (the editor's, with the hair)

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 100 or self.workers < 1 or (self.max_faces is not None and self.max_faces < 1):
            raise ValueError("need 1 <= quality <= 100, workers >= 1 and max_faces >= 1")
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {sorted(GEOMETRIES)}, got {self.geometry!r}")


def write_pack(s: AlignedSet, out: Path, quality: int = QUALITY, geometry: FaceGeometry = CELEBA) -> int:
    """Write one aligned set as a packed folder (replacing one there); its size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("faces-*.webp"):  # a larger earlier pack's atlases would travel too
        old.unlink()
    n, size = len(s.files), s.images.shape[1]
    per = GRID * GRID
    for a in range(0, n, per):
        faces = np.zeros((per, size, size, 3), np.uint8)
        faces[: len(s.images[a : a + per])] = s.images[a : a + per]
        atlas = faces.reshape(GRID, GRID, size, size, 3).transpose(0, 2, 1, 3, 4).reshape(GRID * size, GRID * size, 3)
        Image.fromarray(atlas).save(out / f"faces-{a // per:03d}.webp", quality=quality, method=4)
    np.savez_compressed(
        out / "arrays.npz",
        valid=np.packbits(s.valid.reshape(n, size * size), axis=1),
        labels=s.labels,
        known=s.known,
        identities=s.identities,
    )
    meta = {
        "pack": PACK_VERSION,
        "size": size,
        "geometry": geometry.to_json(),
        "names": s.names,
        "files": s.files,
        "failed": s.failed,
        "packed_from": s.roots,
        "quality": quality,
    }
    (out / PACK_FILE).write_text(json.dumps(meta) + "\n")
    return sum(p.stat().st_size for p in out.iterdir())


def pack_sets(opts: PackOptions) -> Path:
    """Pack each set's training faces (as `--folders` splits them: `training.folders.split_set`)
    under opts.out, one folder per set, named after the set's folder."""
    roots = [Path(r).resolve() for r in (opts.data, *opts.folders)]
    names = [r.name for r in roots]
    if len(set(names)) < len(names):
        raise ValueError(f"sets are packed under their folders' names, and these repeat: {', '.join(names)}")
    rng = np.random.default_rng(opts.seed)
    total = 0
    for root in roots:
        geometry = GEOMETRIES[opts.geometry]
        s = align_folder(
            root, opts.image_size, geometry, cache_dir=opts.cache_dir, max_images=opts.max_images, workers=opts.workers
        )
        train, _ = split_set(s, opts.val_fraction, opts.split_seed)
        if opts.max_faces is not None and len(train) > opts.max_faces:
            train = np.sort(rng.choice(train, opts.max_faces, replace=False))
        nbytes = write_pack(s.take(train), Path(opts.out) / root.name, opts.quality, geometry)
        total += nbytes
        print(f"{root.name}: {len(train)} of {len(s.files)} faces (held-out left out), {nbytes / 2**20:.1f} MiB")
    print(f"{opts.out}: {total / 2**20:.1f} MiB")
    return Path(opts.out)
