"""`python -m training editor-curve`: reach against identity on held-out faces, the editor's
snapshots and the latent route (a DCGAN checkpoint) judged alike.

Each held-out face is CelebA's aligned photo (people the runs did not train on). A model edits
its own crop of it (the editor: the head; the DCGAN: its face crop, inverted and refined as the
service does) towards the other side of what the judge sees, and the change is pasted back into
the photo as the service pastes: photo + the upsampled change. The photo is then judged like
any answer: the attribute by the judge (training/classifier.py, trained from scratch on the
DCGAN's crop; neither model trained against it) on the photo's face crop, the person by dlib
(training/identity.py) on the photo at 3x. So both routes are measured by one yardstick, on the
same faces, at several strengths; and the editor over its snapshots against the CPU time they
cost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from models.checkpoint import EditorCalibration, EditorModel, load_checkpoint, load_editor, save_editor
from models.editnet import COLOUR_ATTRIBUTES
from models.geometry import CELEBA, FaceGeometry
from models.pixels import from_uint8, to_uint8
from training.calibration import applied_edit
from training.classifier import load_classifier
from training.data import CelebA, crop_box
from training.evaluate import TARGET_ATTRIBUTES
from training.folders import DataOptions
from training.identity import SAME_PERSON, IdentityJudge
from training.runs import jsonable


@dataclass(frozen=True, kw_only=True)
class EditorCurveOptions(DataOptions):
    classifier: Path  # the judge
    out: Path = Path("editor-curve.json")
    run: Path | None = None  # an editor run folder: its snapshots (every `every`-th) and checkpoint
    every: int = 1
    dcgan: Path | None = None  # the latent route's checkpoint, judged on the same faces
    attributes: tuple[str, ...] = TARGET_ATTRIBUTES
    strengths: tuple[float, ...] = (1.0,)
    faces: int = 100
    refine_steps: int = 60

    def __post_init__(self) -> None:
        if self.run is None and self.dcgan is None:
            raise ValueError("give --run (an editor run) and/or --dcgan (a latent-route checkpoint)")
        if self.faces < 1 or self.every < 1 or not self.strengths:
            raise ValueError("need faces >= 1, every >= 1 and at least one strength")


def paste_change(photo: np.ndarray, box: tuple[float, ...], before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """photo (H, W, 3) uint8 + (after - before), crops (S, S, 3) uint8 of `box` (x0, y0, x1, y1),
    resized onto the box: what the service's paste does with a model's change."""
    x0, y0, x1, y1 = box
    s = before.shape[0]
    h, w = photo.shape[:2]
    change = after.astype(np.float32) - before.astype(np.float32)
    # the crop's pixel grid onto the photo's: photo pixel (u, v) reads crop (u - x0) * s / (x1 - x0)
    m = np.array([[s / (x1 - x0), 0, -x0 * s / (x1 - x0)], [0, s / (y1 - y0), -y0 * s / (y1 - y0)]])
    warped = cv2.warpAffine(change, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0)
    return np.clip(photo.astype(np.float32) + warped, 0, 255).round().astype(np.uint8)


class Yardstick:
    """The judge and dlib on held-out photos: each photo's face crop, judged view and descriptor."""

    def __init__(self, data: CelebA, idx: np.ndarray, classifier: Path, attributes: tuple[str, ...]) -> None:
        self.clf, meta = load_classifier(classifier)
        names = list(meta["names"])  # type: ignore[call-overload]
        self.cols = [names.index(a) for a in attributes]
        self.judge = IdentityJudge()
        self.photos = [np.asarray(_open(data.photo_path(i))) for i in idx]
        self.rects, self.refs = [], []
        for p in tqdm(self.photos, desc="reference faces", unit="photo"):
            big = _big(p)
            rect = self.judge.locate(big, (0, 0, big.shape[1], big.shape[0]))
            self.rects.append(rect)
            self.refs.append(self.judge.descriptor(big, rect))
        self.before = self.seen(self.photos)  # (N, A) bool

    def seen(self, photos: list[np.ndarray]) -> np.ndarray:
        """The judge's view (N, A) of the attributes on each photo's face crop (CelebA's box, 64 px)."""
        crops = np.stack([_crop(p, CELEBA, 64) for p in photos])
        x = from_uint8(torch.from_numpy(crops))
        with torch.no_grad():
            return (self.clf(x) > 0).numpy()[:, self.cols]

    def same(self, photos: list[np.ndarray]) -> np.ndarray:
        """Whether dlib sees the same person in each photo as in its original (N,) bool."""
        d = [
            np.linalg.norm(self.judge.descriptor(_big(p), r) - ref)
            for p, r, ref in zip(photos, self.rects, self.refs, strict=True)
        ]
        return np.asarray(d) < SAME_PERSON


def _open(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def _big(photo: np.ndarray) -> np.ndarray:
    return cv2.resize(photo, (photo.shape[1] * 3, photo.shape[0] * 3), interpolation=cv2.INTER_CUBIC)


def _crop(photo: np.ndarray, geometry: FaceGeometry, size: int) -> np.ndarray:
    from PIL import Image

    box = crop_box(photo.shape[1], photo.shape[0], geometry.crop_box)
    return np.asarray(Image.fromarray(photo).resize((size, size), Image.Resampling.BICUBIC, box=box))


def editor_point(model: EditorModel, ys: Yardstick, attr_idx: list[int], strength: float) -> dict[str, Any]:
    """Reach and identity of one editor at one strength, per attribute, on the yardstick's photos."""
    size = model.cfg.image_size
    crops = np.stack([_crop(p, model.geometry, size) for p in ys.photos])
    x = from_uint8(torch.from_numpy(crops))
    out: dict[str, Any] = {}
    for j, k in enumerate(attr_idx):
        d = torch.zeros(len(x), len(model.cfg.attributes))
        d[:, k] = torch.from_numpy(np.where(ys.before[:, j], -strength, strength)).float()
        with torch.no_grad():
            edited = to_uint8(torch.cat([model.G(x[i : i + 64], d[i : i + 64])[0] for i in range(0, len(x), 64)]))
        photos = [
            paste_change(p, crop_box(p.shape[1], p.shape[0], model.geometry.crop_box), c, e)
            for p, c, e in zip(ys.photos, crops, edited.numpy(), strict=True)
        ]
        out[model.cfg.attributes[k]] = _shares(ys, photos, j, colour_shift(crops, edited.numpy()))
    return out


def colour_shift(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """How far an edit moves the face's mean colour, per face (N,): the distance between the mean
    CIELAB (a*, b*) of the central half of each crop (N, S, S, 3 uint8 RGB; the face, in the head
    crop) before and after. Lightness is left out: a beard or a frame darkens. An older face drawn
    as a red wash moves it by 12 to 21 where a calibrated Male, smile or frames move it by 1 to 8
    (MODEL_CARD.md)."""

    def mean_ab(crops: np.ndarray) -> np.ndarray:
        q = crops.shape[1] // 4
        centre = np.ascontiguousarray(crops[:, q:-q, q:-q])
        n, h, w, _ = centre.shape
        lab = cv2.cvtColor(centre.reshape(n * h, w, 3), cv2.COLOR_RGB2LAB).reshape(n, h, w, 3)  # per pixel
        return lab[..., 1:].astype(np.float32).mean((1, 2))

    return np.linalg.norm(mean_ab(after) - mean_ab(before), axis=1)


def dcgan_point(path: Path, ys: Yardstick, attributes: tuple[str, ...], strength: float, refine_steps: int
                ) -> dict[str, Any]:  # fmt: skip
    """The latent route at one strength: E, refinement, the calibrated step, pasted by its area."""
    from models.latent_math import RefineOptions, refine_latent

    model = load_checkpoint(path)
    size = model.cfg.image_size
    crops = np.stack([_crop(p, model.geometry, size) for p in ys.photos])
    x = from_uint8(torch.from_numpy(crops))
    assert model.E is not None
    with torch.no_grad():
        z = model.E(x)
    z, _ = refine_latent(model.G, x, z, None, RefineOptions(steps=refine_steps, patience=refine_steps))
    out: dict[str, Any] = {}
    for j, a in enumerate(attributes):
        sign = torch.from_numpy(np.where(ys.before[:, j], -1.0, 1.0)).float()
        direction = model.attribute(a)
        with torch.no_grad():
            served = applied_edit(model, x, z, direction.offset(sign * strength), direction.calibration.area)
        edited = to_uint8(served).numpy()
        photos = [
            paste_change(p, crop_box(p.shape[1], p.shape[0], model.geometry.crop_box), c, e)
            for p, c, e in zip(ys.photos, crops, edited, strict=True)
        ]
        out[a] = _shares(ys, photos, j)
    return out


def _shares(ys: Yardstick, photos: list[np.ndarray], j: int, shift: np.ndarray | None = None) -> dict[str, Any]:
    """Reached and kept over all faces, and apart for the faces the edit added the attribute to and
    those it took it from (with how many faces each); with `shift` (`colour_shift`), its median on
    each side, and over all faces the larger of the two (an older face may be a wash where a
    younger one is not)."""
    reached, same = ys.seen(photos)[:, j] != ys.before[:, j], ys.same(photos)
    out: dict[str, Any] = {"reached": float(reached.mean()), "same_person": float(same.mean())}
    for side, faces in (("added", ~ys.before[:, j]), ("removed", ys.before[:, j])):
        if faces.any():
            out[side] = {"reached": float(reached[faces].mean()), "same_person": float(same[faces].mean()),
                         "faces": int(faces.sum())}  # fmt: skip
            if shift is not None:
                out[side]["colour_shift"] = float(np.median(shift[faces]))
                out["colour_shift"] = max(out.get("colour_shift", 0.0), out[side]["colour_shift"])
    return out


def _mean(point: dict[str, Any]) -> dict[str, float]:
    return {k: float(np.mean([v[k] for v in point.values()])) for k in ("reached", "same_person")}


def editor_curve(opts: EditorCurveOptions) -> Path:
    data = opts.load_data(64)  # the split (by person) is the same for every crop
    idx = data.val_idx[: opts.faces]
    ys = Yardstick(data, idx, opts.classifier, tuple(opts.attributes))
    report: dict[str, Any] = {"options": jsonable(opts), "faces": len(idx), "editor": [], "dcgan": {}}
    if opts.run is not None:
        snaps = sorted((Path(opts.run) / "snapshots").iterdir())[:: -opts.every][::-1]  # always the newest
        for snap in tqdm(snaps, desc="snapshots", unit="snapshot"):
            model = load_editor(snap, parts=("G",))
            cols = [model.cfg.attributes.index(a) for a in opts.attributes]
            t = model.meta["training"]
            points = {str(s): editor_point(model, ys, cols, s) for s in opts.strengths}
            report["editor"].append(
                {
                    "snapshot": snap.name,
                    "kimg": t["kimg"],
                    "cpu_minutes": t["cpu_seconds"] / 60,
                    "points": points,
                    "mean": {s: _mean(p) for s, p in points.items()},
                }
            )
    if opts.dcgan is not None:
        points = {str(s): dcgan_point(opts.dcgan, ys, tuple(opts.attributes), s, opts.refine_steps)
                  for s in opts.strengths}  # fmt: skip
        report["dcgan"] = {"checkpoint": str(opts.dcgan), "points": points,
                           "mean": {s: _mean(p) for s, p in points.items()}}  # fmt: skip
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    plot(report, out.with_suffix(".png"))
    print(markdown(report))
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Held-out faces: {report['faces']} (reached / same person, dlib < {SAME_PERSON})", ""]
    rows = [(f"editor {e['snapshot']} ({e['kimg']:.0f} kimg, {e['cpu_minutes']:.0f} CPU-min)", e)
            for e in report["editor"]]  # fmt: skip
    if report["dcgan"]:
        rows.append((f"latent route {report['dcgan']['checkpoint']}", report["dcgan"]))
    for name, entry in rows:
        for s, per in entry["points"].items():
            cells = " | ".join(f"{a} {v['reached']:.0%} / {v['same_person']:.0%}" for a, v in per.items())
            m = entry["mean"][s]
            lines.append(f"| {name} | strength {s} | {cells} | mean {m['reached']:.0%} / {m['same_person']:.0%} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Left: mean reach and identity of the editor's snapshots against CPU minutes (the latent
    route as lines). Right: reach against identity over strengths, for the latent route and the
    editor's two newest snapshots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    eds = report["editor"]
    if eds:
        s0 = next(iter(eds[0]["mean"]))
        cpu = [e["cpu_minutes"] for e in eds]
        a.plot(cpu, [e["mean"][s0]["reached"] for e in eds], "o-", label=f"editor reached (strength {s0})")
        a.plot(cpu, [e["mean"][s0]["same_person"] for e in eds], "s--", label="editor same person")
        for e in eds[-2:]:  # the newest snapshots, each over its strengths
            b.plot([m["same_person"] for m in e["mean"].values()], [m["reached"] for m in e["mean"].values()],
                   "o-", label=f"editor at {e['kimg']:.0f} kimg")  # fmt: skip
    if report["dcgan"]:
        dm = report["dcgan"]["mean"]
        first = next(iter(dm.values()))
        a.axhline(first["reached"], color="C3", label="latent route reached")
        a.axhline(first["same_person"], color="C3", ls="--", label="latent route same person")
        b.plot([m["same_person"] for m in dm.values()], [m["reached"] for m in dm.values()], "o-", label="latent route")
    a.set_xlabel("training CPU minutes")
    a.set_ylim(0, 1.02)
    a.legend(fontsize=7)
    a.grid(alpha=0.3)
    b.set_xlabel("same person (dlib)")
    b.set_ylabel("attribute reached (judge)")
    b.legend(fontsize=7)
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


SCALES = (0.5, 0.625, 0.75, 0.875, 1.0, 1.5, 2.0, 3.0, 4.0)  # fine below 1: the gate makes 0.5 a half blend
KEEP_PEOPLE, ENOUGH_REACHED = 0.95, 0.85
# `colour_shift`'s median for an attribute that is not a colour (COLOUR_ATTRIBUTES): every step a sheet
# showed as a pink-red wash moved it by 8.7 or more (Young at 1.5 of d4 and of v10), every clean step by
# at most 8.1 (MODEL_CARD.md)
MAX_COLOUR_SHIFT = 8.5


@dataclass(frozen=True, kw_only=True)
class EditorCalibrateOptions(DataOptions):
    checkpoint: Path  # an editor checkpoint
    classifier: Path  # the judge
    out: Path  # the calibrated checkpoint folder (the editor and its calibration)
    attributes: tuple[str, ...] = TARGET_ATTRIBUTES
    scales: tuple[float, ...] = SCALES
    faces: int = 100
    by_side: bool = False  # adding and taking away each get their own difference (look at a sheet first:
    # MODEL_CARD.md, the longer one may reach by a worse picture)
    max_colour_shift: float | None = MAX_COLOUR_SHIFT  # a step of an attribute that is not a colour must not
    # move the face's mean colour further than this (`colour_shift`'s median, on the side it moves most);
    # None: no limit

    def __post_init__(self) -> None:
        if self.faces < 1 or not self.scales or min(self.scales) <= 0:
            raise ValueError("need faces >= 1 and scales > 0")


SIDE_FACES = 12  # held-out faces that must start on a side for it to get its own scale


def choose_scale(points: dict[float, dict[str, float]], colour_limit: float | None = None) -> float:
    """Strength 1's difference: the person first. The smallest scale that reaches ENOUGH_REACHED
    while keeping KEEP_PEOPLE, else the one that reaches most while keeping KEEP_PEOPLE (reach is
    not monotonic: far past its attribute an edit turns into something else), else the shortest.
    With `colour_limit`, a scale keeps the face only if it also moves its colour no further (a red
    wash is read as age by the judge and by dlib's age network alike: MODEL_CARD.md)."""
    kept = [
        s
        for s in sorted(points)
        if points[s]["same_person"] >= KEEP_PEOPLE
        and (colour_limit is None or points[s].get("colour_shift", 0.0) <= colour_limit)
    ]
    enough = [s for s in kept if points[s]["reached"] >= ENOUGH_REACHED]
    if enough:
        return enough[0]
    return max(kept, key=lambda s: (points[s]["reached"], -s)) if kept else min(points)


def editor_calibrate(opts: EditorCalibrateOptions) -> Path:
    """`python -m training editor-calibrate`: what strength 1 sends for each attribute, measured on
    held-out faces of people that `evaluate`, `editor-curve` and `compare-photos` do not judge
    (CelebA.calibration_idx), with the same yardstick."""
    data = opts.load_data(64)
    idx = data.calibration_idx(opts.faces, evaluated=max(256, opts.faces))
    ys = Yardstick(data, idx, opts.classifier, tuple(opts.attributes))
    model = load_editor(opts.checkpoint)
    table: dict[str, dict[float, dict[str, Any]]] = {a: {} for a in opts.attributes}
    for s in tqdm(opts.scales, desc="scales", unit="scale"):
        point = editor_point(model, ys, [model.cfg.attributes.index(a) for a in opts.attributes], s)
        for a in opts.attributes:
            table[a][s] = point[a]
    for a, points in table.items():
        limit = None if a in COLOUR_ATTRIBUTES else opts.max_colour_shift
        model.calibrations[a] = calibration_of(points, opts.by_side, limit)
    model.meta["calibration_table"] = {a: {str(s): p for s, p in pts.items()} for a, pts in table.items()}
    model.meta["calibration_faces"] = len(idx)
    save_editor(opts.out, model)
    for a, cal in model.calibrations.items():
        print(
            f"{a}: strength 1 = difference {model.scale(a)} adding, {model.scale(a, remove=True)} removing "
            f"(reached {cal.reached:.2f}, same person {cal.same_person:.2f}, "
            f"colour shift {chosen_colour_shift(table[a], cal):.1f})"
        )
    shares = np.array([(c.reached, c.same_person) for c in model.calibrations.values()], dtype=float)
    print(f"mean of {len(shares)}: reached {shares[:, 0].mean():.3f}, same person {shares[:, 1].mean():.3f}")
    return Path(opts.out)


def chosen_colour_shift(points: dict[float, dict[str, Any]], cal: EditorCalibration) -> float:
    """How far strength 1 moves the face's colour: at its one step, or the worse of each side's at its own."""
    if cal.remove_scale is None:
        return float(points[cal.scale]["colour_shift"])
    return max(points[cal.scale]["added"]["colour_shift"], points[cal.remove_scale]["removed"]["colour_shift"])


def calibration_of(
    points: dict[float, dict[str, Any]], by_side: bool, colour_limit: float | None = None
) -> EditorCalibration:
    """Strength 1 of one attribute from its points (scale -> `_shares`): one scale chosen on all
    faces, or `by_side` one for adding it and one for taking it away when at least SIDE_FACES faces
    start on either side (a smile may be given sooner than taken); reached and kept are then the
    sides' shares at their scales, weighed by their faces. `colour_limit`: `choose_scale`'s."""
    common = choose_scale(points, colour_limit)
    faces = {side: points[common].get(side, {}).get("faces", 0) for side in ("added", "removed")}
    if not by_side or min(faces.values()) < SIDE_FACES:
        return EditorCalibration(common, points[common]["reached"], points[common]["same_person"])
    add, remove = (choose_scale({s: p[side] for s, p in points.items()}, colour_limit) for side in ("added", "removed"))
    a, r = points[add]["added"], points[remove]["removed"]
    n = faces["added"] + faces["removed"]
    share = {k: (a[k] * faces["added"] + r[k] * faces["removed"]) / n for k in ("reached", "same_person")}
    return EditorCalibration(add, share["reached"], share["same_person"], remove_scale=remove)
