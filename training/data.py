"""CelebA-layout data: attribute, partition and identity files, a uint8 image cache, splits.

The layout is CelebA's own: `img_align_celeba/*.jpg`, `list_attr_celeba.txt`, and optionally
`list_eval_partition.txt` and `identity_CelebA.txt`. Images are full (178x218) or half
(89x109) resolution; the face crop is defined in full-resolution pixels and scaled.
Decoded faces are cached once as a (N, S, S, 3) uint8 .npy so epochs never decode JPEGs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from models.geometry import CELEBA, FaceGeometry
from models.pixels import from_uint8

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
IMAGE_DIR = "img_align_celeba"
# The face crop (in full-resolution pixels) is the model's face geometry, kept in models/.
FULL_SIZE = CELEBA.frame  # width, height of CelebA's aligned images
CROP_BOX = CELEBA.crop_box
CACHE_VERSION = 1


class CelebAFormatError(ValueError):
    """A CelebA label file that is missing or does not follow the official format."""


@dataclass
class AttributeTable:
    names: list[str]  # the 40 attribute names, in file order
    files: list[str]  # image file names, in file order
    labels: np.ndarray  # (N, K) int8 in {0, 1}


def read_attributes(path: Path) -> AttributeTable:
    """Parse list_attr_celeba.txt: a count line, a header of names, rows of name and +-1."""
    if not path.is_file():
        raise CelebAFormatError(f"{path}: attribute file not found")
    with path.open() as f:
        lines = [ln for ln in (raw.strip() for raw in f) if ln]
    if len(lines) < 2:
        raise CelebAFormatError(f"{path}: expected a count line and a header line")
    try:
        count = int(lines[0])
    except ValueError:
        raise CelebAFormatError(f"{path}:1: first line must be the image count, got {lines[0][:40]!r}") from None
    names = lines[1].split()
    rows = lines[2:]
    if count != len(rows):
        raise CelebAFormatError(f"{path}: count line says {count} images, found {len(rows)} rows")
    files: list[str] = []
    labels = np.empty((len(rows), len(names)), dtype=np.int8)
    for i, row in enumerate(rows):
        parts = row.split()
        if len(parts) != len(names) + 1:
            raise CelebAFormatError(
                f"{path}:{i + 3}: expected a file name and {len(names)} labels, got {len(parts)} fields"
            )
        values = parts[1:]
        if any(v not in ("1", "-1") for v in values):
            raise CelebAFormatError(f"{path}:{i + 3}: labels must be 1 or -1")
        files.append(parts[0])
        labels[i] = [v == "1" for v in values]
    return AttributeTable(names, files, labels)


def read_labels(path: Path) -> dict[str, int]:
    """Parse a 'file value' per line file (partition or identity)."""
    out: dict[str, int] = {}
    with path.open() as f:
        for i, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise CelebAFormatError(f"{path}:{i}: expected 'file integer'")
            out[parts[0]] = int(parts[1])
    return out


Box = tuple[float, float, float, float]


def crop_box(width: int, height: int, box: Box = CROP_BOX) -> Box:
    """`box` (full-resolution pixels; CROP_BOX by default) scaled to an image of this size (full or
    half resolution)."""
    sx, sy = width / FULL_SIZE[0], height / FULL_SIZE[1]
    x0, y0, x1, y1 = box
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


def load_face(path: Path, size: int, box: Box = CROP_BOX) -> np.ndarray:
    """Decode one aligned CelebA image and crop (`box`) + resize it to (size, size, 3) uint8."""
    with Image.open(path) as im:
        face = im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC, box=crop_box(*im.size, box))
    return np.array(face, dtype=np.uint8)


def _load_many(args: tuple[list[Path], int, Box]) -> np.ndarray:
    paths, size, box = args
    return np.stack([load_face(p, size, box) for p in paths])


EVALUATED = 256  # held-out faces `evaluate` judges: the first of the split (whole photos use fewer)


@dataclass
class CelebA:
    """Faces (N, S, S, 3) uint8, labels (N, K) {0,1}, identities, and a train/val split."""

    root: Path
    images: np.ndarray
    attributes: AttributeTable
    identities: np.ndarray | None  # (N,) or None when identity_CelebA.txt is absent
    train_idx: np.ndarray
    val_idx: np.ndarray
    known: np.ndarray | None = None  # (N, K) bool: which labels exist; None when all do
    valid: np.ndarray | None = None  # (N, S, S) bool: pixels that came from the photo; None when all did
    source: np.ndarray | None = None  # (N,) which folder each face came from (photo folders)
    roots: list[Path] | None = None  # those folders; files are relative to them

    def photo_path(self, i: int) -> Path:
        """The photo face i was cut from."""
        if self.roots is None or self.source is None:
            return self.root / IMAGE_DIR / self.attributes.files[i]
        return self.roots[int(self.source[i])] / self.attributes.files[i]

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def tensor(self) -> Tensor:
        """All images as one uint8 tensor (N, S, S, 3), shared with the numpy cache."""
        return torch.from_numpy(self.images)

    def signed_labels(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """(N, len(names)) float32: +1 has the attribute, -1 has not, 0 unknown (a set without that label)."""
        have = list(self.attributes.names)
        missing = [n for n in names if n not in have]
        if missing:
            raise ValueError(f"the data has no labels for {missing}; it has {have}")
        cols = [have.index(n) for n in names]
        signed = self.attributes.labels[:, cols].astype(np.float32) * 2 - 1
        if self.known is not None:
            signed[~self.known[:, cols]] = 0
        return signed

    def calibration_idx(self, n: int, evaluated: int) -> np.ndarray:
        """n held-out faces from the end of the split, of people not among its first `evaluated`
        faces (the ones `evaluate` judges): calibrating on the people the figures are measured
        on would flatter them. A small split gives its second half to calibration."""
        evaluated = min(evaluated, len(self.val_idx) // 2)
        judged = set() if self.identities is None else set(self.identities[self.val_idx[:evaluated]].tolist())
        tail = [
            i for i in self.val_idx[evaluated:][::-1] if self.identities is None or self.identities[i] not in judged
        ]
        return np.array(tail[:n], dtype=self.val_idx.dtype)

    def describe(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "images": int(len(self.images)),
            "train": int(len(self.train_idx)),
            "val": int(len(self.val_idx)),
            "identities": None if self.identities is None else int(len(np.unique(self.identities))),
            "image_size": self.image_size,
            "crop_box_full_res": CROP_BOX,
        }


def load_celeba(
    root: str | Path,
    image_size: int = 64,
    max_images: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    geometry: FaceGeometry = CELEBA,
) -> CelebA:
    """Read a CelebA-layout folder, decode (or reuse the cached) faces cropped to `geometry`'s
    box, split by identity."""
    root = Path(root)
    if not (root / IMAGE_DIR).is_dir():
        raise CelebAFormatError(f"{root}: no {IMAGE_DIR}/ folder (expected the CelebA layout)")
    table = read_attributes(root / ATTR_FILE)
    if max_images is not None:
        table = AttributeTable(table.names, table.files[:max_images], table.labels[:max_images])
    paths = [root / IMAGE_DIR / f for f in table.files]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise CelebAFormatError(f"{root}: {len(missing)} images listed in {ATTR_FILE} are missing, e.g. {missing[0]}")

    identities = None
    if (root / IDENTITY_FILE).is_file():
        ids = read_labels(root / IDENTITY_FILE)
        if all(f in ids for f in table.files):
            identities = np.array([ids[f] for f in table.files], dtype=np.int64)

    box = geometry.crop_box
    images = _cached_images(root, paths, image_size, Path(cache_dir) if cache_dir else None, workers, box)
    train_idx, val_idx = split(len(paths), identities, val_fraction, seed)
    return CelebA(root, images, table, identities, train_idx, val_idx)


def split(
    n: int, identities: np.ndarray | None, val_fraction: float, seed: int, people: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train/val indices; with identities, no person appears on both sides. The held-out people
    are drawn from `people` (sorted, unique) where given, else from those in `identities`."""
    rng = np.random.default_rng(seed)
    if identities is not None:
        people = np.unique(identities) if people is None else people
        val_people = rng.permutation(people)[: max(1, round(len(people) * val_fraction))]
        is_val = np.isin(identities, val_people)
    else:
        is_val = np.zeros(n, dtype=bool)
        is_val[rng.permutation(n)[: max(1, round(n * val_fraction))]] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _cached_images(
    root: Path, paths: list[Path], size: int, cache_dir: Path | None, workers: int, box: Box = CROP_BOX
) -> np.ndarray:
    key = json.dumps([CACHE_VERSION, str(root.resolve()), len(paths), paths[0].name, paths[-1].name, size, list(box)])
    cache_dir = cache_dir or Path.home() / ".cache" / "faceedit"
    cache = cache_dir / f"celeba-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"
    if cache.is_file():
        return np.load(cache, mmap_mode=None, allow_pickle=False)
    chunks = [paths[i : i + 256] for i in range(0, len(paths), 256)]
    out: list[np.ndarray] = []
    with tqdm(total=len(paths), desc="decoding faces", unit="img") as bar:
        if workers > 1 and len(chunks) > 1:
            with ProcessPoolExecutor(workers) as pool:
                for arr in pool.map(_load_many, [(c, size, box) for c in chunks]):
                    out.append(arr)
                    bar.update(len(arr))
        else:
            for c in chunks:
                out.append(_load_many((c, size, box)))
                bar.update(len(c))
    images = np.concatenate(out)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")  # processes filling the cache at once (torchrun)
    np.save(tmp, images, allow_pickle=False)
    tmp.replace(cache)
    return images


def to_model_input(batch_u8: Tensor, device: torch.device, channels_last: bool = True) -> Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [-1, 1], channels-last in memory."""
    x = from_uint8(batch_u8.to(device, non_blocking=True))
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def batches(
    images: Tensor, idx: np.ndarray, batch_size: int, rng: np.random.Generator, flip: bool = True
) -> Iterator[tuple[np.ndarray, Tensor]]:
    """Endless shuffled batches of uint8 faces (with random horizontal flips) and their indices."""
    while True:
        order = rng.permutation(idx)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            sel = np.sort(order[i : i + batch_size])
            x = images[torch.from_numpy(sel)]
            if flip:
                mask = torch.from_numpy(rng.random(len(sel)) < 0.5)
                x[mask] = x[mask].flip(2)  # width axis of (B, S, S, 3)
            yield sel, x
