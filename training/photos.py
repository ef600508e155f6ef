"""Whole-photo evaluation: the service's own pipeline on photos it has never seen.

Test photos are made from held-out CelebA faces (people not in the training split) the way
users' photos differ from aligned crops: the tight crop itself, a portrait on a larger
canvas, a small face on a big photo, a phone JPEG stored sideways with its EXIF orientation,
black and white, and dark; plus the shipped photos in ../shared/data/photos. Each is
decoded, inverted and edited with the service core's own functions, exactly as
`/edit?paste=true` does (`invert_photo`, `latent_edit`, `edited_photo`), and judged by an
independent identity model (training.identity) and the attribute classifier.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from torch import Tensor
from tqdm import tqdm

from models.areas import Area
from models.checkpoint import FaceModel
from models.edits import latent_edit
from models.geometry import CELEBA
from models.pixels import from_uint8
from training.classifier import AttributeClassifier
from training.data import CelebA
from training.folders import DataOptions
from training.identity import SAME_PERSON, IdentityJudge
from training.runs import jsonable
from worker.pipeline import editnet
from worker.pipeline.composite import Blend, edited_photo, paste
from worker.pipeline.editnet import EditNetEngine
from worker.pipeline.encoded import Encoded
from worker.pipeline.engine import Engine
from worker.pipeline.engines import AnyEngine, load_engine
from worker.pipeline.errors import ServiceError
from worker.pipeline.faces import Face, align, find_face, warp_to_crop
from worker.pipeline.images import MAX_IMAGE_PIXELS, MAX_PHOTO_PIXELS, decode_photo
from worker.pipeline.inversion import REFINE, invert_photo

KINDS = ("crop", "portrait", "small", "exif", "grey", "dark")


@dataclass(frozen=True)
class TestPhoto:
    name: str
    kind: str
    data: bytes
    face: int = 0


def _jpeg(im: Image.Image, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def make_photo(path: Path, kind: str, rng: np.random.Generator) -> bytes:
    """One test photo of `kind` from an aligned CelebA image."""
    face = Image.open(path).convert("RGB")
    if kind == "crop":
        return path.read_bytes()
    big = face.resize((face.width * 3, face.height * 3), Image.Resampling.BICUBIC)
    if kind in ("portrait", "small"):
        canvas_size = (900, 1200) if kind == "portrait" else (2400, 1800)
        scale = 1.0 if kind == "portrait" else 0.5
        subject = big.resize((round(big.width * scale), round(big.height * scale)), Image.Resampling.LANCZOS)
        noise = rng.integers(0, 256, (canvas_size[1] // 64, canvas_size[0] // 64, 3), dtype=np.uint8)
        canvas = Image.fromarray(noise).resize(canvas_size, Image.Resampling.BICUBIC)  # a blurry, face-free scene
        canvas = canvas.filter(ImageFilter.GaussianBlur(8))
        x = int(rng.integers(0, canvas_size[0] - subject.width))
        y = int(rng.integers(0, canvas_size[1] - subject.height))
        canvas.paste(subject, (x, y))
        return _jpeg(canvas)
    if kind == "exif":  # pixels stored sideways, as a phone held upright writes them
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
        return _jpeg(big.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    if kind == "grey":
        return _jpeg(ImageOps.grayscale(big))
    if kind == "dark":
        return _jpeg(Image.fromarray((np.asarray(big, np.float32) * 0.4).astype(np.uint8)))
    raise ValueError(f"unknown kind {kind!r}")


def test_photos(data: CelebA, per_kind: int, shipped: Path | None, seed: int = 0) -> list[TestPhoto]:
    """per_kind photos of every kind, each from a different held-out face, kinds interleaved."""
    rng = np.random.default_rng(seed)
    idx = data.val_idx[: per_kind * len(KINDS)]
    photos = [
        TestPhoto(
            f"{data.attributes.files[i]}:{kind}",
            kind,
            make_photo(data.photo_path(i), kind, rng),
        )
        for j, i in enumerate(idx)
        for kind in (KINDS[j % len(KINDS)],)
    ]
    if shipped is not None and shipped.is_dir():
        for path in sorted(shipped.iterdir()):
            photos.append(TestPhoto(path.name, "shipped", path.read_bytes()))
    return photos


def encode_photo(engine: AnyEngine, data: bytes, face: int = 0) -> Encoded:
    """An upload decoded and inverted (or, for the editor, aligned) as `/encode` does it with the
    service's default limits."""
    photo = decode_photo(data, MAX_IMAGE_PIXELS, MAX_PHOTO_PIXELS)
    if isinstance(engine, EditNetEngine):
        return editnet.prepare_photo(engine, photo, face=face)
    return invert_photo(engine, photo, face=face, refine=REFINE)


class PhotoJudge:
    """The service's own answer on whole photos made from held-out faces (`test_photos`' kinds),
    judged for identity: calibration's last word, since what is kept on a 64 px crop is not
    always kept in a photo."""

    def __init__(
        self, model: FaceModel, clf: AttributeClassifier, data: CelebA, idx: np.ndarray, seed: int = 1
    ) -> None:
        rng = np.random.default_rng(seed)
        self.engine = Engine(model, batch_wait_ms=0)
        self.judge = IdentityJudge()
        self.faces: list[tuple[Encoded, Any, np.ndarray]] = []  # encoded photo, dlib rect, descriptor
        crops = []
        for j, i in enumerate(tqdm(idx, desc="calibration photos", unit="photo")):
            path = data.photo_path(i)
            try:
                enc = encode_photo(self.engine, make_photo(path, KINDS[j % len(KINDS)], rng))
            except ServiceError:
                continue
            assert enc.photo is not None and enc.face_box is not None
            rect = self.judge.locate(enc.photo.pixels, enc.face_box)
            self.faces.append((enc, rect, self.judge.descriptor(enc.photo.pixels, rect)))
            crops.append(_crop_of(enc.photo.pixels, enc, self.engine.image_size))
        self.has = torch.from_numpy(_judge(clf, crops))  # (N, K): the classifier's view of each face

    def same_share(self, offset: Tensor, area: Area, group: Tensor) -> float:
        """Share of the photos in `group` (N,) still the same person after adding `offset` (nz,)."""
        same = []
        for (enc, rect, ref), chosen in zip(self.faces, group.tolist(), strict=True):
            if chosen:
                out = edited_photo(self.engine, enc, enc.z[None] + offset.cpu(), "change", area)
                same.append(np.linalg.norm(self.judge.descriptor(out, rect) - ref) < SAME_PERSON)
        return float(np.mean(same))


def _crop_of(photo: np.ndarray, enc: Encoded, size: int) -> np.ndarray:
    assert enc.aligned is not None
    return warp_to_crop(photo, enc.aligned.matrix, size).pixels


def _judge(clf: AttributeClassifier, crops: list[np.ndarray]) -> np.ndarray:
    x = from_uint8(torch.from_numpy(np.stack(crops)))
    with torch.no_grad():
        return (clf(x) > 0).numpy()


def _zoom(photo: np.ndarray, box: tuple[int, int, int, int], side: int = 160) -> np.ndarray:
    """The region around a face (2x its box), as a side x side tile."""
    x, y, w, h = box
    c = (x + w / 2, y + h / 2)
    r = max(w, h)
    m = np.array(
        [[side / (2 * r), 0, side / 2 - c[0] * side / (2 * r)], [0, side / (2 * r), side / 2 - c[1] * side / (2 * r)]]
    )
    return cv2.warpAffine(photo, m, (side, side), flags=cv2.INTER_AREA, borderValue=(255, 255, 255))


def evaluate_photos(
    checkpoint: Path,
    clf: AttributeClassifier,
    names: list[str],
    photos: list[TestPhoto],
    attributes: tuple[str, ...],
    strength: float,
    sheet_path: Path,
    sheet_rows: int = 20,
) -> dict[str, Any]:
    """Faces found, identity kept, attributes reached and the others kept on whole photos, per
    blend (the latent route has two); and a sheet: each photo, then each edit of it."""
    engine = load_engine(checkpoint, "cpu", batch_wait_ms=0)
    try:
        report, rows = judge_photos(engine, clf, names, photos, attributes, strength)
    finally:
        engine.close()
    if rows:
        Image.fromarray(np.concatenate(rows[:sheet_rows], axis=0)).save(sheet_path)
    return {**report, "sheet": str(sheet_path)}


def judge_photos(
    engine: AnyEngine,
    clf: AttributeClassifier,
    names: list[str],
    photos: list[TestPhoto],
    attributes: tuple[str, ...],
    strength: float,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Each photo as the service answers it: encoded, each attribute pushed at `strength` to the
    other side of what the judge `clf` sees, pasted. The judge reads the face re-aligned to its
    own crop (CelebA's) from the photo's landmarks; dlib judges the person. Also the sheet's rows."""
    judge = IdentityJudge()
    blends: tuple[Blend, ...] = ("change",) if isinstance(engine, EditNetEngine) else ("change", "generated")
    found: dict[str, list[bool]] = {}
    same = {b: {a: [] for a in attributes} for b in blends}  # type: dict[str, dict[str, list[float]]]
    reached = {b: {a: [] for a in attributes} for b in blends}  # type: dict[str, dict[str, list[bool]]]
    kept = {a: [] for a in attributes}  # type: dict[str, list[float]]
    kinds: list[str] = []  # the kind of each photo whose face was found, in the order of `same` and `reached`
    ms: list[float] = []
    rows: list[np.ndarray] = []
    for p in tqdm(photos, desc="photos", unit="photo"):
        try:
            enc = encode_photo(engine, p.data, p.face)
        except ServiceError:
            found.setdefault(p.kind, []).append(False)
            continue
        found.setdefault(p.kind, []).append(True)
        kinds.append(p.kind)
        ms.append(1000 * (enc.inversion.seconds if enc.inversion else 0.0))
        assert enc.photo is not None and enc.face_box is not None
        original = enc.photo.pixels
        face, _ = find_face(original, p.face)  # where the judge looks, before and after
        rect = judge.locate(original, enc.face_box)
        ref = judge.descriptor(original, rect)
        before = _judge(clf, [judge_crop(original, face)])[0]
        tiles = [_zoom(original, enc.face_box)]
        for a in attributes:
            k = names.index(a)
            sign = -1.0 if before[k] else 1.0  # push each face to the other side
            for b in blends:
                out = edited_photo_of(engine, enc, a, sign * strength, b)
                seen = _judge(clf, [judge_crop(out, face)])[0]
                same[b][a].append(float(np.linalg.norm(judge.descriptor(out, rect) - ref)))
                reached[b][a].append(bool(seen[k] != before[k]))
                if b == "change":
                    kept[a].append(float(np.delete(seen == before, k).mean()))
                    tiles.append(_zoom(out, enc.face_box))
        rows.append(np.concatenate(tiles, axis=1))
    n_found = sum(sum(v) for v in found.values())
    report = {
        "photos": len(photos),
        "faces_found": n_found,
        "faces_found_by_kind": {k: f"{sum(v)}/{len(v)}" for k, v in found.items()},
        "refine_ms_median": float(np.median(ms)) if ms else None,
        "strength": strength,
        "same_person_threshold": SAME_PERSON,
        "blends": {b: {a: _shares(same[b][a], reached[b][a]) for a in attributes} for b in blends},
        "others_kept": {a: float(np.mean(v)) if v else 0.0 for a, v in kept.items()},
        "change_by_kind": _by_kind(kinds, same["change"], reached["change"]),
    }
    return report, rows


def judge_crop(photo: np.ndarray, face: Face) -> np.ndarray:
    """The judge's view of a face: aligned to CelebA's crop at 64 px, whatever model edited it."""
    return align(photo, face, 64, CELEBA).pixels


def edited_photo_of(engine: AnyEngine, enc: Encoded, attribute: str, strength: float, blend: Blend) -> np.ndarray:
    """The whole photo with one attribute's edit, as `/edit` answers it."""
    assert enc.photo is not None
    if isinstance(engine, EditNetEngine):
        d = engine.difference([(attribute, strength)])
        return paste(enc.photo.pixels, editnet.edited_region(engine, enc, d))
    change = latent_edit([(engine.attribute(attribute), strength)], engine.cfg.latent_size)
    return edited_photo(engine, enc, enc.z[None] + change.offset, blend, change.area)


def _shares(distances: list[float] | np.ndarray, reached: list[bool] | np.ndarray) -> dict[str, float]:
    """Same person, median identity distance and target reached of some edited photos."""
    d, r = np.asarray(distances, float), np.asarray(reached, bool)
    return {
        "same_person": float(np.mean(d < SAME_PERSON)) if len(d) else 0.0,
        "distance_median": float(np.median(d)) if len(d) else float("nan"),
        "target_reached": float(np.mean(r)) if len(r) else 0.0,
    }


def _by_kind(
    kinds: list[str], same: dict[str, list[float]], reached: dict[str, list[bool]]
) -> dict[str, dict[str, dict[str, float]]]:
    """The shares of each kind of photo, per edit: where the photo path loses."""
    sel = {kind: np.array(kinds) == kind for kind in dict.fromkeys(kinds)}
    return {kind: {a: _shares(np.array(same[a])[s], np.array(reached[a])[s]) for a in same} for kind, s in sel.items()}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Whole photos: {report['photos']}, face found in {report['faces_found']} "
        f"({', '.join(f'{k} {v}' for k, v in report['faces_found_by_kind'].items())}); "
        f"refinement {report['refine_ms_median'] or 0:.0f} ms median; strength {report['strength']}",
        "",
        "| blend | edit | same person (dlib < 0.6) | median distance | target reached |",
        "|---|---|---|---|---|",
    ]
    for b, per in report["blends"].items():
        for a, r in per.items():
            lines.append(
                f"| {b} | {a} | {r['same_person']:.0%} | {r['distance_median']:.3f} | {r['target_reached']:.0%} |"
            )
    kept = report.get("others_kept", {})
    if kept:
        lines += ["", "Other attributes the judge sees unchanged (your photo + the change): "
                  + ", ".join(f"{a} {v:.1%}" for a, v in kept.items())]  # fmt: skip
    by_kind = report.get("change_by_kind", {})
    edits = list(next(iter(by_kind.values()), {}))
    if edits:
        lines += ["", "Your photo + the change, by kind of photo: target reached / same person", ""]
        lines += ["| kind | " + " | ".join(edits) + " |", "|---" * (len(edits) + 1) + "|"]
        for kind, per in by_kind.items():
            cells = (f"{per[a]['target_reached']:.0%} / {per[a]['same_person']:.0%}" for a in edits)
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, kw_only=True)
class ComparePhotosOptions(DataOptions):
    checkpoints: tuple[Path, ...]  # every model judged on the same photos, in one run
    classifier: Path  # the judge (`python -m training classifier`); no model trained against it
    out: Path = Path("photos-report.json")
    attributes: tuple[str, ...] = ("Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young")
    strength: float = 1.0
    per_kind: int = 20  # photos of each kind (KINDS) made from held-out faces
    photos_dir: Path | None = None  # more photos; default: `photos/` beside the data folder
    sheet_rows: int = 20

    def __post_init__(self) -> None:
        if not self.checkpoints or self.per_kind < 1:
            raise ValueError("give at least one checkpoint and per_kind >= 1")


def compare_photos(opts: ComparePhotosOptions) -> Path:
    """`python -m training compare-photos`: several models on the same whole photos of people
    none of them trained on, judged alike; one report and one sheet (each photo, then each
    model's edits of it, side by side)."""
    from training import identity
    from training.classifier import load_classifier

    if not identity.available():
        raise RuntimeError("whole-photo evaluation needs the identity judge: pip install -e '.[identity]'")
    clf, meta = load_classifier(opts.classifier)
    names = list(meta["names"])  # type: ignore[call-overload]
    data = opts.load_data(64)
    shipped = opts.photos_dir or Path(opts.data).resolve().parent / "photos"
    photos = test_photos(data, opts.per_kind, shipped, opts.seed)
    reports: dict[str, Any] = {}
    sheets: list[list[np.ndarray]] = []
    for ckpt in opts.checkpoints:
        engine = load_engine(ckpt, "cpu", batch_wait_ms=0)
        try:
            reports[str(ckpt)], rows = judge_photos(engine, clf, names, photos, tuple(opts.attributes), opts.strength)
        finally:
            engine.close()
        sheets.append(rows)
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"options": jsonable(opts), "models": reports}, indent=2) + "\n")
    text = "\n".join(f"### {name}\n\n{markdown(r)}" for name, r in reports.items())
    out.with_suffix(".md").write_text(text)
    if all(len(r) == len(sheets[0]) for r in sheets):  # the same faces found: rows line up
        gap = np.full((sheets[0][0].shape[0], 8, 3), 255, np.uint8)
        side = sheets[0][0].shape[0]  # each row: the photo, then each model's edits without the photo again
        rows = [np.concatenate([sheets[0][i][:, :side], *(x for rs in sheets for x in (gap, rs[i][:, side:]))], axis=1)
                for i in range(min(len(sheets[0]), opts.sheet_rows))]  # fmt: skip
        Image.fromarray(np.concatenate(rows, axis=0)).save(out.with_name(out.stem + "-sheet.png"))
    print(text)
    return out
