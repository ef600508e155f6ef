"""`python -m training attributes`: one latent direction per CelebA attribute.

1. Latents: every training face is inverted as the service inverts a photo: E(x), refined
   towards the face (`models.editing.refine_latent`), so the directions live where the
   service's latents live.
2. v_a = mean(z | a) - mean(z | not a), the counts behind each mean stored.
3. Conditioning (InterFaceGAN, Shen et al. 2020): v_a loses its components along the
   directions of the attributes a user expects to stay (`KEEP`), so Smiling does not move
   High_Cheekbones and Eyeglasses does not change the sex.
4. Calibration (with `--classifier`): each direction is scaled so that strength 1, applied
   as the service applies it (the face + mask * (G(z + v) - G(z))), moves `--reach` of
   held-out faces to the other side of the attribute, by the classifier's judgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from models.checkpoint import FaceModel, load_checkpoint, save_checkpoint
from models.editing import RefineOptions, refine_latent
from training.classifier import AttributeClassifier, load_classifier
from training.data import DataOptions, to_model_input
from training.runs import pick_device
from worker.core.faces import change_mask

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
    calibration_faces: int = 256


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
    out = directions.clone()
    for k, name in enumerate(names):
        keep = [names.index(b) for b in kept(names, name)]
        if not keep:
            continue
        basis = torch.linalg.qr(directions[keep].T.double()).Q  # (nz, |keep|), orthonormal
        v = directions[k].double()
        out[k] = (v - basis @ (basis.T @ v)).float()
    return out


@torch.no_grad()
def applied_edit(model: FaceModel, x: Tensor, z: Tensor, step: Tensor) -> Tensor:
    """What the service returns for aligned faces x (B, 3, S, S): x + mask * (G(z + step) - G(z))."""
    both = model.G(torch.cat([z, z + step]))
    base, edited = both[: len(z)], both[len(z) :]
    delta = ((edited - base) * 127.5).permute(0, 2, 3, 1).cpu().numpy()  # pixel units, (B, S, S, 3)
    valid = np.ones(delta.shape[1:3], bool)
    masks = torch.from_numpy(np.stack([change_mask(d, valid) for d in delta]))[:, None].to(x.device)
    return (x + masks * (edited - base)).clamp(-1, 1)


@torch.no_grad()
def reach_rate(
    model: FaceModel, clf: AttributeClassifier, x: Tensor, z: Tensor, k: int, direction: Tensor, scale: float
) -> float:
    """Share of faces that an edit of `scale` * direction moves to the other side of attribute k."""
    has = clf(x)[:, k] > 0  # the judge's own view of the unedited face
    sign = torch.where(has, -1.0, 1.0)[:, None]
    pred = clf(applied_edit(model, x, z, sign * scale * direction)) > 0
    return float((pred[:, k] == ~has).float().mean())


LENGTHS = (2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0)  # latent units; a typical z has norm ~10


def calibrate(
    model: FaceModel, clf: AttributeClassifier, x: Tensor, z: Tensor, reach: float, names: list[str]
) -> dict[str, dict[str, float]]:
    """Scale each direction so strength 1 is the shortest step that reaches `reach`.

    The reach of a step is not monotonic (long steps leave the faces G can draw), so the
    lengths are scanned first; the first that reaches is refined by bisection, and where none
    reaches, the best one is kept and its reach reported.
    """
    assert model.directions is not None
    out = {}
    for k, name in enumerate(tqdm(names, desc="calibrating", unit="attribute")):
        v = model.directions[k]
        if float(v.norm()) == 0:
            continue
        unit = v / v.norm()
        rates = [reach_rate(model, clf, x, z, k, unit, length) for length in LENGTHS]
        first = next((i for i, r in enumerate(rates) if r >= reach), None)
        if first is None:
            best = int(np.argmax(rates))
            length, rate = LENGTHS[best], rates[best]
        else:
            lo, hi, rate = (LENGTHS[first - 1] if first else 0.0), LENGTHS[first], rates[first]
            for _ in range(5):
                mid = (lo + hi) / 2
                r = reach_rate(model, clf, x, z, k, unit, mid)
                lo, hi, rate = (lo, mid, r) if r >= reach else (mid, hi, rate)
            length = hi
        model.directions[k] = unit * length
        out[name] = {"length": length, "reached": rate}
    return out


def compute_attributes(opts: AttributeOptions) -> Path:
    device = pick_device(opts.device)
    model = load_checkpoint(opts.checkpoint, device)
    if model.E is None:
        raise ValueError(f"{opts.checkpoint}: has no encoder (E.*); train one with `encoder` first")
    data = opts.load_data(model.cfg.image_size)
    names = list(data.attributes.names)
    images = data.tensor()
    z = invert_all(model, images, data.train_idx, device, opts.batch, opts.refine_steps)
    d, counts = directions_from_latents(z, data.attributes.labels[data.train_idx])
    model.directions = (condition(d, names) if opts.conditional else d).to(device)
    model.attribute_names = names
    model.meta["directions"] = {
        "latents": f"E(x) refined {opts.refine_steps} steps",
        "conditional": {n: kept(names, n) for n in names} if opts.conditional else None,
    }
    if opts.classifier is not None:
        clf, _ = load_classifier(opts.classifier, device)
        idx = data.val_idx[: opts.calibration_faces]
        x = to_model_input(images[torch.from_numpy(idx)], device)
        z_val = invert_all(model, images, idx, device, opts.batch, opts.refine_steps).to(device)
        model.meta["directions"]["calibration"] = {
            "reach": opts.reach,
            "faces": len(idx),
            "attributes": calibrate(model, clf, x, z_val, opts.reach, names),
        }
        model.meta["default_strength"] = 1.0  # strength 1 is now the calibrated edit
    model.meta["attributes"] = {
        name: {"with": int(c[0]), "without": int(c[1]), "norm": float(model.directions[i].norm())}
        for i, (name, c) in enumerate(zip(names, counts, strict=True))
    }
    model.meta.setdefault("default_strength", 1.0)
    out = opts.out or opts.checkpoint
    save_checkpoint(out, model.to("cpu"))
    cal = model.meta["directions"].get("calibration", {}).get("attributes", {})
    for name, c in zip(names, counts, strict=True):
        extra = f"  strength 1 = {cal[name]['length']:5.2f}, reaches {cal[name]['reached']:.0%}" if name in cal else ""
        print(f"{name:20s} with {c[0]:6d}  without {c[1]:6d}{extra}")
    return Path(out)
