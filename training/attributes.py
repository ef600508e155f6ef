"""`python -m training attributes`: one latent direction per CelebA attribute.

1. Latents: every training face is inverted as the service inverts a photo: E(x), refined
   towards the face (`models.latent_math.refine_latent`), so the directions live where the
   service's latents live.
2. v_a = mean(z | a) - mean(z | not a), the counts behind each mean stored.
3. Conditioning (InterFaceGAN, Shen et al. 2020): v_a loses its components along the
   directions of the attributes a user expects to stay (`KEEP`), so Smiling does not move
   High_Cheekbones and Eyeglasses does not change the sex.
4. Calibration (with `--classifier`, `training.calibration`): each direction's area (where in
   the face it acts) and its lengths for adding and removing are chosen so that strength 1,
   applied as the service applies it, keeps the person and moves `--reach` of held-out faces
   across the attribute. What it chose is written as each attribute's
   `models.edits.Calibration`, the type the service reads it back through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from models.checkpoint import FaceModel, load_checkpoint, save_checkpoint
from models.latent_math import RefineOptions, orthogonalize, refine_latent
from training.calibration import SAME_PERSON_SHARE, Calibrator, CropIdentity, calibrate
from training.classifier import load_classifier
from training.data import EVALUATED, to_model_input
from training.folders import DataOptions
from training.identity import available as identity_available
from training.photos import PhotoJudge
from training.runs import pick_device

# What each edit should leave alone. Measured on the bundled model (MODEL_CARD.md): keeping
# High_Cheekbones out of Smiling, or Male out of Blond_Hair and Young, leaves too little of
# the edit for the classifier to see it at any strength, so those are not conditioned.
KEEP = {
    "Smiling": ("Male", "Young"),
    "Eyeglasses": ("Male", "Young"),
    "Male": ("Young", "Eyeglasses"),
}
DEFAULT_KEEP: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AttributeOptions(DataOptions):
    checkpoint: Path  # a folder with G and E; the directions are written into `out`
    out: Path | None = None  # default: the checkpoint folder itself
    batch: int = 256
    refine_steps: int = 30  # inversion refinement per face (0: E(x) alone)
    conditional: bool = True  # orthogonalise against KEEP
    classifier: Path | None = None  # calibrate strength 1 with this judge (`python -m training classifier`)
    reach: float = 0.85  # share of held-out faces that strength 1 should move across
    calibration_faces: int = 128
    calibration_photos: int = 60  # whole photos (training.photos kinds) each length is checked on last; 0: none
    identity: bool = True  # keep the person (dlib's judge, if installed) before reaching the attribute
    latent_faces: int | None = None  # invert only this many training faces for the mean-difference directions
    only: tuple[str, ...] = ()  # calibrate only these attributes (default: every one with a direction)


def invert_all(
    model: FaceModel, images: Tensor, idx: np.ndarray, device: torch.device, batch: int, steps: int
) -> Tensor:
    """Refined latents of faces idx: (len(idx), nz) on the CPU, with a progress bar."""
    assert model.E is not None
    out = []
    for i in tqdm(range(0, len(idx), batch), desc="inverting faces", unit="batch"):
        x = to_model_input(images[torch.from_numpy(idx[i : i + batch])], device)
        with torch.no_grad():
            z = model.E(x).float()
        if steps:
            z, _ = refine_latent(model.G, x, z, None, RefineOptions(steps=steps, patience=steps))
        out.append(z.cpu())
    return torch.cat(out)


def directions_from_latents(z: torch.Tensor, labels: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """z (N, nz), labels (N, K) in {0, 1} -> directions (K, nz) and counts (K, 2) [with, without].

    An attribute that no face (or every face) has gets a zero direction.
    """
    lab = torch.from_numpy(labels.astype(np.float32))  # (N, K)
    n_with = lab.sum(0)
    n_without = len(lab) - n_with
    mean_with = (lab.T @ z) / n_with.clamp_min(1)[:, None]
    mean_without = ((1 - lab).T @ z) / n_without.clamp_min(1)[:, None]
    d = mean_with - mean_without
    d[(n_with == 0) | (n_without == 0)] = 0
    return d, np.stack([n_with.numpy(), n_without.numpy()], 1).astype(np.int64)


def kept(names: list[str], name: str) -> list[str]:
    return [b for b in KEEP.get(name, DEFAULT_KEEP) if b in names and b != name]


def condition(directions: Tensor, names: list[str]) -> Tensor:
    """Each v_a minus its projection on span{v_b : b kept by a} (InterFaceGAN's conditional edit)."""
    return torch.stack(
        [
            orthogonalize(directions[k], directions[[names.index(b) for b in kept(names, n)]])
            for k, n in enumerate(names)
        ]
    )


def label_axes(model: FaceModel, names: list[str]) -> dict[int, Tensor]:
    """For a conditional G: the direction of each attribute it takes, its y axis (length 2:
    from has-not to has), by the row of `names` it belongs to."""
    cfg = model.cfg
    axes = {}
    for j, cond in enumerate(cfg.conditions):
        if cond in names:
            v = torch.zeros(cfg.latent_size)
            v[cfg.nz + j] = 2.0
            axes[names.index(cond)] = v
    return axes


def compute_attributes(opts: AttributeOptions) -> Path:
    device = pick_device(opts.device)
    model = load_checkpoint(opts.checkpoint, device)
    if model.E is None:
        raise ValueError(f"{opts.checkpoint}: has no encoder (E.*); train one with `encoder` first")
    data = opts.load_data(model.cfg.image_size)
    names = list(data.attributes.names)
    images = data.tensor()
    train_idx = data.train_idx
    if opts.latent_faces is not None and opts.latent_faces < len(train_idx):
        train_idx = np.sort(np.random.default_rng(opts.seed).choice(train_idx, opts.latent_faces, replace=False))
    z = invert_all(model, images, train_idx, device, opts.batch, opts.refine_steps)
    labels = data.attributes.labels[train_idx]
    if data.known is not None:  # a face whose label is unknown counts on neither side
        labels = np.where(data.known[train_idx], labels, 0)
    d, counts = directions_from_latents(z, labels)
    d = condition(d, names) if opts.conditional else d
    axes = label_axes(model, names)
    for k, v in axes.items():  # what a conditional G was trained on, it edits by its label
        d[k] = v
    model.directions = d.to(device)
    model.attribute_names = names
    model.calibrations = {}  # new directions: whatever was calibrated before no longer holds
    model.meta["directions"] = {
        "latents": f"E(x) refined {opts.refine_steps} steps",
        "conditional": {n: kept(names, n) for n in names} if opts.conditional else None,
        "label_axes": [names[k] for k in axes],
    }
    if opts.classifier is not None:
        clf, _ = load_classifier(opts.classifier, device)
        idx = data.calibration_idx(opts.calibration_faces + opts.calibration_photos, EVALUATED)
        idx, photo_idx = idx[: opts.calibration_faces], idx[opts.calibration_faces :]
        x = to_model_input(images[torch.from_numpy(idx)], device)
        z_val = invert_all(model, images, idx, device, opts.batch, opts.refine_steps).to(device)
        judge = opts.identity and identity_available()
        identity = CropIdentity(x) if judge else None
        photos = PhotoJudge(model, clf, data, photo_idx) if judge and len(photo_idx) else None
        model.meta["directions"]["calibration"] = {
            "reach": opts.reach,
            "same_person": SAME_PERSON_SHARE if identity else None,
            "faces": len(idx),
            "photos": len(photos.faces) if photos else 0,
        }
        model.calibrations = calibrate(
            Calibrator(model, clf, x, z_val, opts.reach, identity, photos, tuple(axes)), names, opts.only
        )
        model.meta["default_strength"] = 1.0  # strength 1 is now the calibrated edit
    model.meta["attributes"] = {
        name: {"with": int(c[0]), "without": int(c[1]), "norm": float(model.directions[i].norm())}
        for i, (name, c) in enumerate(zip(names, counts, strict=True))
    }
    model.meta.setdefault("default_strength", 1.0)
    out = opts.out or opts.checkpoint
    save_checkpoint(out, model.to("cpu"))
    for name, c in zip(names, counts, strict=True):
        cal = model.calibrations.get(name)
        extra = (
            f"  strength 1 = +{cal.length:g} / -{cal.remove_length:g} "
            f"({'+'.join(cal.area.regions)}, focus {list(cal.area.focus)}), reaches "
            f"{cal.reached or 0:.0%}, same person {cal.same_person or 0:.0%}"
            if cal
            else ""
        )
        print(f"{name:20s} with {c[0]:6d}  without {c[1]:6d}{extra}")
    return Path(out)
