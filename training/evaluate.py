"""`python -m training evaluate`: reconstruction and edit quality on held-out faces.

Reconstruction: L2, L1 (images in [-1, 1]) and SSIM of G(E(x)) and of G(z*) after the
service's inversion refinement started from E(x). Samples: a Frechet distance in the
attribute classifier's feature space. Any family's checkpoint (training/families.py) is judged
on the same held-out faces, so `evaluate` compares families. Edits: for each attribute, every face is pushed
towards the opposite of its label (z +- s * v); the attribute classifier judges whether
the target is reached and whether each other attribute keeps its reconstruction's value. The
target is judged twice: on what G draws, G(z + s * v), and on what the service would return for
the face, x + mask * (G(z* + s * v) - G(z*)) from its refined latent. A far step can make G
draw the attribute on a face that is no longer the person's, which the first count rewards
and the second does not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.checkpoint import load_checkpoint
from models.latent_math import RefineOptions, refine_latent
from models.losses import l1, l2, ssim
from models.networks import sample_latents
from training.calibration import applied_edit
from training.classifier import AttributeClassifier, load_classifier
from training.data import EVALUATED, CelebA, to_model_input
from training.folders import DataOptions
from training.plots import save_grid
from training.runs import jsonable, pick_device

TARGET_ATTRIBUTES = ("Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young")


@dataclass(frozen=True, kw_only=True)
class EvaluateOptions(DataOptions):
    checkpoint: Path
    classifier: Path
    out: Path = Path("report.json")
    attributes: tuple[str, ...] = TARGET_ATTRIBUTES
    strength: float | None = None  # default: the checkpoint's default_strength
    n_faces: int = EVALUATED
    opt_steps: int = 100
    batch: int = 64
    photos: int = 20  # whole test photos per kind (training.photos.KINDS); 0 skips them
    photos_dir: Path | None = None  # more photos; default: `photos/` beside the data folder

    def __post_init__(self) -> None:
        if self.n_faces < 1 or self.opt_steps < 0 or self.batch < 1:
            raise ValueError("need n_faces >= 1, opt_steps >= 0, batch >= 1")


def evaluate(opts: EvaluateOptions) -> Path:
    device = pick_device(opts.device)
    model = load_checkpoint(opts.checkpoint, device)
    if model.E is None or model.directions is None:
        raise ValueError(f"{opts.checkpoint}: evaluate needs G, E and the attribute directions")
    clf, clf_meta = load_classifier(opts.classifier, device)
    names = list(model.attribute_names)
    unknown = [a for a in opts.attributes if a not in names]
    if unknown:
        raise ValueError(f"unknown attributes {unknown}; known: {names}")
    if clf_meta["names"] != names:
        raise ValueError("the classifier and the checkpoint disagree on the attribute list")
    data = opts.load_data(model.cfg.image_size)
    idx = data.val_idx[: opts.n_faces]
    images, labels = data.tensor(), torch.from_numpy(data.attributes.labels)
    strength = opts.strength if opts.strength is not None else float(model.meta.get("default_strength", 1.0))
    refine = RefineOptions(steps=opts.opt_steps, patience=opts.opt_steps)  # as the service inverts
    G, E = model.G, model.E

    rec_sums: dict[str, dict[str, float]] = {"encoder": {}, "refined": {}}
    reached = {a: 0 for a in opts.attributes}
    applied = {a: 0 for a in opts.attributes}
    kept = {a: torch.zeros(len(names)) for a in opts.attributes}
    sheet: list[torch.Tensor] = []
    for i in tqdm(range(0, len(idx), opts.batch), desc="evaluate", unit="batch"):
        sel = torch.from_numpy(idx[i : i + opts.batch])
        x = to_model_input(images[sel], device)
        with torch.no_grad():
            z = E(x)
            rec = G(z)
        z_opt = refine_latent(G, x, z, None, refine)[0] if opts.opt_steps else z
        with torch.no_grad():
            rec_opt = G(z_opt)
            for key, r in (("encoder", rec), ("refined", rec_opt)):
                for name, fn in (("l2", l2), ("l1", l1), ("ssim", ssim)):
                    rec_sums[key][name] = rec_sums[key].get(name, 0.0) + fn(r, x).sum().item()
            base = clf(rec) > 0  # (B, K): attributes of the unedited reconstruction
            edits = []
            for a in opts.attributes:
                k = names.index(a)
                has = labels[sel, k].to(device).bool()
                sign = torch.where(has, -1.0, 1.0)  # push each face to the other side
                offset = model.attribute(a).offset(sign * strength)
                edited = G(z + offset)
                pred = clf(edited) > 0
                reached[a] += int((pred[:, k] == ~has).sum())
                served = applied_edit(model, x, z_opt, offset, model.attribute(a).calibration.area)
                applied[a] += int(((clf(served) > 0)[:, k] == ~has).sum())
                kept[a] += (pred == base).float().sum(0).cpu()
                edits.append(edited)
            if not sheet:
                n = min(8, len(x))
                sheet = [t for j in range(n) for t in (x[j], rec[j], rec_opt[j], *(e[j] for e in edits))]
    n = len(idx)
    report = _report(opts, strength, n, names, rec_sums, reached, applied, kept, model.meta)
    report["family"] = model.cfg.family
    report["sample_fd"] = sample_fd(G, clf, images, data.val_idx, device)
    report["seconds_per_kimg"] = model.meta.get("training", {}).get("seconds_per_kimg")
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if opts.photos:
        report["whole_photos"] = whole_photo_report(opts, data, clf, names)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    save_grid(torch.stack(sheet), out.with_name(out.stem + "-examples.png"), nrow=3 + len(opts.attributes))
    print(markdown(report))
    return out


@torch.no_grad()
def sample_fd(
    G: nn.Module, clf: AttributeClassifier, images: torch.Tensor, idx: np.ndarray, device: torch.device
) -> float:
    """Sample quality: the Frechet distance between held-out faces and as many samples G(z), in
    the feature space of the attribute classifier (its pooled last conv layer): an offline
    stand-in for FID, comparable between models judged by the same classifier, not with FID."""

    def features(x: torch.Tensor) -> np.ndarray:
        return clf.trunk(x).mean((2, 3)).double().cpu().numpy()

    real = np.concatenate(
        [features(to_model_input(images[torch.from_numpy(idx[i : i + 256])], device)) for i in range(0, len(idx), 256)]
    )
    gen = torch.Generator().manual_seed(0)
    fake = np.concatenate(
        [features(G(sample_latents(G, min(256, len(idx) - i), gen).to(device))) for i in range(0, len(idx), 256)]
    )
    mu_a, mu_b = real.mean(0), fake.mean(0)
    ca, cb = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = np.sqrt(np.clip(np.linalg.eigvals(ca @ cb).real, 0, None)).sum()  # trace of sqrtm(ca cb)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * covmean)


def whole_photo_report(
    opts: EvaluateOptions, data: CelebA, clf: AttributeClassifier, names: list[str]
) -> dict[str, Any]:
    """The service's pipeline on whole test photos (training.photos), with the identity judge."""
    from training import identity, photos

    if not identity.available():
        raise RuntimeError("whole-photo evaluation needs the identity judge: pip install -e '.[identity]'")
    shipped = opts.photos_dir or Path(opts.data).resolve().parent / "photos"
    test = photos.test_photos(data, opts.photos, shipped, opts.seed)
    sheet = Path(opts.out).with_name(Path(opts.out).stem + "-photos.png")
    strength = opts.strength if opts.strength is not None else 1.0
    return photos.evaluate_photos(opts.checkpoint, clf, names, test, opts.attributes, strength, sheet)


def _report(
    opts: EvaluateOptions,
    strength: float,
    n: int,
    names: list[str],
    rec_sums: dict[str, dict[str, float]],
    reached: dict[str, int],
    applied: dict[str, int],
    kept: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> dict[str, Any]:
    edits = {}
    for a in opts.attributes:
        rates = kept[a] / n
        others = {b: float(rates[j]) for j, b in enumerate(names) if b != a}
        worst = min(others, key=others.__getitem__)
        edits[a] = {
            "target_reached": reached[a] / n,
            "target_reached_applied": applied[a] / n,
            "others_unchanged_mean": float(np.mean(list(others.values()))),
            "others_unchanged_min": others[worst],
            "worst_other": worst,
            "others_unchanged_at_least_90pct": sum(v >= 0.9 for v in others.values()) / len(others),
        }
    return {
        "faces": n,
        "strength": strength,
        "options": jsonable(opts),
        "reconstruction": {k: {m: v / n for m, v in d.items()} for k, d in rec_sums.items()},
        "edits": edits,
        "checkpoint_training": meta.get("training", {}),
    }


def markdown(report: dict[str, Any]) -> str:
    r = report["reconstruction"]
    lines = [
        f"Family {report.get('family')}: held-out faces {report['faces']}, edit strength {report['strength']}; "
        f"sample Frechet distance (classifier features) {report.get('sample_fd', float('nan')):.2f}",
        "",
        "| reconstruction | L2 | L1 | SSIM |",
        "|---|---|---|---|",
        *(f"| {k} | {v['l2']:.4f} | {v['l1']:.4f} | {v['ssim']:.4f} |" for k, v in r.items()),
        "",
        "| edit | target reached by G | reached as the service applies it | others unchanged (mean) "
        "| others >= 90% unchanged | worst other |",
        "|---|---|---|---|---|---|",
    ]
    for a, e in report["edits"].items():
        lines.append(
            f"| {a} | {e['target_reached']:.1%} | {e['target_reached_applied']:.1%} | "
            f"{e['others_unchanged_mean']:.1%} | "
            f"{e['others_unchanged_at_least_90pct']:.0%} | {e['worst_other']} ({e['others_unchanged_min']:.1%}) |"
        )
    if "whole_photos" in report:
        from training.photos import markdown as photo_markdown

        lines += ["", photo_markdown(report["whole_photos"])]
    return "\n".join(lines) + "\n"
