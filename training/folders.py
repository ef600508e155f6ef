"""Any folder of photos as a training set, aligned the way the service aligns an upload.

A set is a folder of images (searched recursively for .jpg/.jpeg/.png/.webp) and, optionally,
labels: CelebA's own files (`list_attr_celeba.txt`, `identity_CelebA.txt`, beside the images or
one folder up) or a `labels.csv` with a `file` column and any of
- CelebA attribute names as columns (1 / -1, 1 / 0, true / false; empty = unknown),
- `age` (years): Young where age <= 30, not Young where age >= 40, unknown between,
- `gender` in UTKFace's codes (0 male, 1 female): Male,
- `identity`: an integer person id (used to split train/val by person).

Every photo goes through the service's own detector and landmarks (`worker.pipeline.faces`) into the
checkpoint's face geometry, with the validity mask where the crop runs out of the photo; photos
where no face is found are listed, not trained on. The aligned set is cached once per folder,
size and geometry as an .npz outside the repository, so epochs never detect or decode again.
Labels that a set does not have are marked unknown (`known` False), never guessed. A folder
that `python -m training pack` wrote is read back as it was packed (`training.pack`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from models.geometry import CELEBA, FaceGeometry
from training.data import (
    ATTR_FILE,
    IDENTITY_FILE,
    IMAGE_DIR,
    AttributeTable,
    CelebA,
    CelebAFormatError,
    load_celeba,
    read_attributes,
    read_labels,
    split,
)
from worker.pipeline.faces import align, detect_faces

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CACHE_VERSION = 1
YOUNG_MAX_AGE, OLD_MIN_AGE = 30, 40  # ages between are left unknown for Young
PACK_FILE, PACK_VERSION = "pack.json", 1  # a folder `python -m training pack` wrote (training.pack)
GRID = 16  # a packed folder's faces per atlas side


@dataclass(frozen=True, kw_only=True)
class DataOptions:
    """The data options every training command shares; their fields become CLI flags."""

    data: Path
    max_images: int | None = None
    val_fraction: float = 0.1
    seed: int = 0  # the run's own randomness (init, batches, targets); not which people are held out
    # Which people are held out: one split for every run and every judge, so a run with another --seed
    # is never judged on faces it trained on
    split_seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 where the hardware runs it natively (CUDA, AVX512-BF16/AMX CPUs)
    cache_dir: Path | None = None
    # More photo folders to train on besides `data`; with any, or with --align, every folder
    # (data included) is aligned by the service's detector (training/folders.py).
    folders: tuple[Path, ...] = ()
    align: bool = False

    def load_data(self, image_size: int, geometry: FaceGeometry = CELEBA) -> CelebA:
        if self.folders or self.align or not (Path(self.data) / IMAGE_DIR).is_dir():
            return load_folders([Path(self.data), *self.folders], image_size, self.max_images,
                                self.val_fraction, self.split_seed, self.cache_dir, geometry)  # fmt: skip
        return load_celeba(self.data, image_size, self.max_images, self.val_fraction, self.split_seed, self.cache_dir,
                           geometry=geometry)  # fmt: skip


@dataclass
class AlignedSet:
    """Aligned faces of one or more folders, with labels where the folders had them."""

    names: list[str]  # attribute names (columns of labels / known)
    files: list[str]  # source photo of each face, relative to its folder's root
    images: np.ndarray  # (N, S, S, 3) uint8
    valid: np.ndarray  # (N, S, S) bool: False where the crop ran out of the photo
    labels: np.ndarray  # (N, K) int8 in {0, 1}; meaningless where not known
    known: np.ndarray  # (N, K) bool
    identities: np.ndarray  # (N,) int64; -1 where unknown
    source: np.ndarray  # (N,) int16: which folder each face came from
    roots: list[str]
    failed: list[str]  # photos where no face was found
    # Every person the folder's photos show, faces found or not: the split is drawn over them, so
    # the held-out people do not depend on what the detector missed (None: identities unknown).
    people: np.ndarray | None = None
    train_only: bool = False  # a packed set: its held-out faces were left behind (training.pack)

    def take(self, idx: np.ndarray | slice) -> AlignedSet:
        """The faces at idx, with the set's names, roots and people."""
        files = self.files[idx] if isinstance(idx, slice) else [self.files[i] for i in idx]
        return replace(
            self,
            files=files,
            images=self.images[idx],
            valid=self.valid[idx],
            labels=self.labels[idx],
            known=self.known[idx],
            identities=self.identities[idx],
            source=self.source[idx],
        )

    def summary(self) -> dict[str, object]:
        per_root = {r: int((self.source == i).sum()) for i, r in enumerate(self.roots)}
        return {
            "faces": len(self.files),
            "per_folder": per_root,
            "no_face_found": len(self.failed),
            "partial_crops": int((~self.valid.all(axis=(1, 2))).sum()),
            "labelled": {n: int(self.known[:, k].sum()) for k, n in enumerate(self.names)},
        }


def image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _align_one(path: Path, size: int, geometry: FaceGeometry) -> tuple[np.ndarray, np.ndarray] | None:
    with Image.open(path) as im:
        photo = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    faces = detect_faces(photo)
    if not faces:
        return None
    a = align(photo, faces[0], size, geometry)
    return a.pixels, a.valid


def _one_thread() -> None:
    """Each worker process one OpenCV thread: N processes x N threads each ran 10x slower here."""
    import cv2

    cv2.setNumThreads(1)


def _align_many(args: tuple[list[Path], int, dict[str, object]]) -> list[tuple[np.ndarray, np.ndarray] | None]:
    paths, size, geometry = args
    geo = FaceGeometry.from_json(geometry)
    return [_align_one(p, size, geo) for p in paths]


def _read_labels(root: Path, files: list[str]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(names, labels, known, identities) for the folder's photos, from whatever label files it has."""
    names: list[str] = []
    columns: dict[str, dict[str, int]] = {}  # attribute -> file -> 0/1
    identities: dict[str, int] = {}
    basenames = [Path(f).name for f in files]
    for base in (root, root.parent):
        if (base / ATTR_FILE).is_file():
            table = read_attributes(base / ATTR_FILE)
            names = list(table.names)
            for k, n in enumerate(names):
                columns[n] = {f: int(v) for f, v in zip(table.files, table.labels[:, k], strict=True)}
            if (base / IDENTITY_FILE).is_file():
                identities = read_labels(base / IDENTITY_FILE)
            break
    csv_path = next((b / "labels.csv" for b in (root, root.parent) if (b / "labels.csv").is_file()), None)
    if csv_path is not None:
        with csv_path.open(newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "file" not in reader.fieldnames:
                raise CelebAFormatError(f"{csv_path}: needs a 'file' column")
            for i, row in enumerate(reader, 2):
                name = Path(row["file"]).name
                for col, raw in row.items():
                    raw = (raw or "").strip().lower()
                    if col == "file" or not raw:
                        continue
                    try:
                        if col == "age":
                            age = float(raw)
                            if age <= YOUNG_MAX_AGE or age >= OLD_MIN_AGE:
                                columns.setdefault("Young", {})[name] = int(age <= YOUNG_MAX_AGE)
                        elif col == "gender":
                            columns.setdefault("Male", {})[name] = int(int(raw) == 0)
                        elif col == "identity":
                            identities[name] = int(raw)
                        elif col not in ("race",):
                            columns.setdefault(col, {})[name] = int(raw in ("1", "true", "yes"))
                    except ValueError:
                        raise CelebAFormatError(f"{csv_path}:{i}: column {col}: cannot read {raw!r}") from None
            names += [c for c in columns if c not in names]
    labels = np.zeros((len(files), len(names)), np.int8)
    known = np.zeros((len(files), len(names)), bool)
    for k, n in enumerate(names):
        col = columns.get(n, {})
        for i, b in enumerate(basenames):
            if b in col:
                labels[i, k], known[i, k] = col[b], True
    ids = np.array([identities.get(b, -1) for b in basenames], np.int64)
    return names, labels, known, ids


def align_folder(
    root: str | Path,
    size: int = 64,
    geometry: FaceGeometry = CELEBA,
    cache_dir: Path | None = None,
    max_images: int | None = None,
    workers: int = 1,
) -> AlignedSet:
    """Detect, align and label every photo of a folder (cached; see the module docstring)."""
    root = Path(root)
    if (root / PACK_FILE).is_file():  # aligned already, packed to travel (training.pack)
        return read_pack(root, size, geometry, max_images)
    paths = image_files(root / "images" if (root / "images").is_dir() else root)
    if (root / "img_align_celeba").is_dir():
        paths = image_files(root / "img_align_celeba")
    if not paths:
        raise CelebAFormatError(f"{root}: no photos ({', '.join(IMAGE_SUFFIXES)}) found")
    paths = paths[:max_images]
    files = [str(p.relative_to(root)) for p in paths]
    key = json.dumps([CACHE_VERSION, str(root.resolve()), files[0], files[-1], len(files), size, geometry.to_json()])
    cache = (
        cache_dir or Path.home() / ".cache" / "faceedit"
    ) / f"aligned-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            images, valid, found = z["images"], z["valid"], z["found"]
    else:
        chunks = [paths[i : i + 128] for i in range(0, len(paths), 128)]
        results: list[tuple[np.ndarray, np.ndarray] | None] = []
        with tqdm(total=len(paths), desc=f"aligning {root.name}", unit="img") as bar:
            jobs = [(c, size, geometry.to_json()) for c in chunks]
            if workers > 1 and len(chunks) > 1:
                with ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
                    for part in pool.map(_align_many, jobs):
                        results += part
                        bar.update(len(part))
            else:
                for job in jobs:
                    results += _align_many(job)
                    bar.update(len(job[0]))
        found = np.array([r is not None for r in results])
        ok = [r for r in results if r is not None]
        images = np.stack([r[0] for r in ok]) if ok else np.zeros((0, size, size, 3), np.uint8)
        valid = np.stack([r[1] for r in ok]) if ok else np.zeros((0, size, size), bool)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # processes filling the cache at once (torchrun)
        np.savez(tmp, images=images, valid=valid, found=found)
        tmp.replace(cache)
    names, labels, known, ids = _read_labels(root, files)
    keep = np.flatnonzero(found)
    return AlignedSet(
        names=names,
        files=[files[i] for i in keep],
        images=images,
        valid=valid,
        labels=labels[keep],
        known=known[keep],
        identities=ids[keep],
        source=np.zeros(len(keep), np.int16),
        roots=[str(root)],
        failed=[files[i] for i in np.flatnonzero(~found)],
        people=np.unique(ids) if len(ids) and (ids >= 0).all() else None,
    )


def read_pack(root: Path, size: int, geometry: FaceGeometry = CELEBA, max_images: int | None = None) -> AlignedSet:
    """A packed folder back as an aligned set; CelebAFormatError when it was packed otherwise."""
    meta = json.loads((root / PACK_FILE).read_text())
    if meta.get("pack") != PACK_VERSION:
        raise CelebAFormatError(f"{root}: pack version {meta.get('pack')!r}, this code reads {PACK_VERSION}")
    if meta["size"] != size:
        raise CelebAFormatError(f"{root}: packed at {meta['size']} px, this run asks {size} px: pack it again")
    if FaceGeometry.from_json(meta["geometry"]) != geometry:
        raise CelebAFormatError(f"{root}: packed in another face geometry than this run's: pack it again")
    n = min(len(meta["files"]), max_images if max_images is not None else len(meta["files"]))
    per, side = GRID * GRID, GRID * size
    faces = []
    for a in range(0, n, per):
        with Image.open(root / f"faces-{a // per:03d}.webp") as im:
            atlas = np.asarray(im.convert("RGB"))
        if atlas.shape != (side, side, 3):
            raise CelebAFormatError(f"{root}: atlas {a // per} is {atlas.shape[:2]}, expected {side} x {side}")
        faces.append(atlas.reshape(GRID, size, GRID, size, 3).transpose(0, 2, 1, 3, 4).reshape(per, size, size, 3))
    with np.load(root / "arrays.npz", allow_pickle=False) as z:
        ids = z["identities"]
        valid = np.unpackbits(z["valid"], axis=1, count=size * size).reshape(len(ids), size, size).astype(bool)
        labels, known = z["labels"], z["known"]
    whole = AlignedSet(
        names=list(meta["names"]),
        files=list(meta["files"]),
        images=np.concatenate(faces) if faces else np.zeros((0, size, size, 3), np.uint8),
        valid=valid,
        labels=labels,
        known=known,
        identities=ids,
        source=np.zeros(len(ids), np.int16),
        roots=[str(root)],
        failed=list(meta["failed"]),
        train_only=True,
    )
    return whole.take(slice(0, n))


def combine(sets: Sequence[AlignedSet]) -> AlignedSet:
    """One set from several: attribute columns are the union (unknown where a set lacks one),
    identities are kept apart per folder."""
    names: list[str] = []
    for s in sets:
        names += [n for n in s.names if n not in names]
    n_total = sum(len(s.files) for s in sets)
    labels = np.zeros((n_total, len(names)), np.int8)
    known = np.zeros((n_total, len(names)), bool)
    ids, start, offset = [], 0, 0
    for s in sets:
        for k, n in enumerate(s.names):
            j = names.index(n)
            labels[start : start + len(s.files), j] = s.labels[:, k]
            known[start : start + len(s.files), j] = s.known[:, k]
        ids.append(np.where(s.identities >= 0, s.identities + offset, -1))
        offset += int(s.identities.max(initial=-1)) + 1
        start += len(s.files)
    source = np.concatenate([np.full(len(s.files), i, np.int16) for i, s in enumerate(sets)])
    return AlignedSet(
        names=names,
        files=[f for s in sets for f in s.files],
        images=np.concatenate([s.images for s in sets]),
        valid=np.concatenate([s.valid for s in sets]),
        labels=labels,
        known=known,
        identities=np.concatenate(ids),
        source=source,
        roots=[r for s in sets for r in s.roots],
        failed=[f for s in sets for f in s.failed],
    )


# A packed set's own held-out share: it holds training faces only, so this is for the run's own
# reconstructions and figures; the people `evaluate` judges stayed behind.
PACKED_VAL_FRACTION = 0.02


def split_set(s: AlignedSet, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices of one set, by person where it says who. The people are drawn
    from all the folder's photos, faces found or not: a CelebA folder holds out the same people
    aligned here as in its own layout (`training.data.load_celeba`)."""
    if s.train_only:
        return split(len(s.files), _known_ids(s), min(val_fraction, PACKED_VAL_FRACTION), seed)
    return split(len(s.files), _known_ids(s), val_fraction, seed, people=s.people)


def _known_ids(s: AlignedSet) -> np.ndarray | None:
    return s.identities if len(s.identities) and (s.identities >= 0).all() else None


def load_folders(
    roots: Sequence[Path],
    size: int = 64,
    max_images: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: Path | None = None,
    geometry: FaceGeometry = CELEBA,
) -> CelebA:
    """Aligned, combined folders as training data. Each folder is split on its own (by person
    where it has identities), so a folder's held-out faces are the same with or without the others."""
    sets = [align_folder(r, size, geometry, cache_dir=cache_dir, max_images=max_images) for r in roots]
    both = combine(sets)
    train, val, start = [], [], 0
    for s in sets:
        t, v = split_set(s, val_fraction, seed)
        train.append(t + start)
        val.append(v + start)
        start += len(s.files)
    table = AttributeTable(both.names, both.files, both.labels)
    data = CelebA(
        root=Path(roots[0]),
        images=both.images,
        attributes=table,
        identities=np.where(both.identities >= 0, both.identities, -1 - np.arange(len(both.files))),
        train_idx=np.concatenate(train),
        val_idx=np.concatenate(val),
        known=both.known,
        valid=both.valid,
        source=both.source,
        roots=[Path(r) for r in roots],
    )
    return data
