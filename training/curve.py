"""`python -m training curve`: sample quality over CPU minutes, for any runs, on the same faces.

Every run of `python -m training <family>` keeps G at each snapshot (`snapshots/G-*.safetensors`,
with the CPU seconds it had cost). For each, the Frechet distance between held-out faces and as
many samples G(z) is taken in the pooled pyramid of the frozen EfficientNet-Lite0 (an FID-like
figure: ImageNet features, not Inception's, so comparable between our models, not with
published FIDs). All runs are judged in one process on the same faces and the same sample seed,
and drawn as curves over CPU minutes (wall seconds x threads) into one plot; a checkpoint
(`--reference`, e.g. the bundled model) is a horizontal line at its final figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from models.checkpoint import build_generator, load_checkpoint, model_config, read_config
from models.features import EfficientNetLite0, load_features, pooled
from models.networks import sample_latents
from training.data import to_model_input
from training.folders import DataOptions
from training.runs import pick_device


@dataclass(frozen=True, kw_only=True)
class CurveOptions(DataOptions):
    runs: tuple[Path, ...]  # run folders with snapshots/
    reference: Path | None = None  # a checkpoint judged once (its training CPU time from config.json)
    reference_cpu_minutes: float | None = None  # when its config.json does not record it (the bundled model: 146)
    faces: int = 1000  # held-out faces, and as many samples per point
    out: Path = Path("runs/curve.png")
    every: int = 1  # judge every n-th snapshot


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature rows a (N, F) and b (M, F)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.sqrt(np.clip(np.linalg.eigvals(ca @ cb).real, 0, None)).sum()  # trace of sqrtm(ca cb)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * covmean)


@torch.no_grad()
def features_of(net: EfficientNetLite0, images: torch.Tensor, size: int = 128) -> np.ndarray:
    """Pooled EfficientNet-Lite0 pyramid (N, 496) of images (N, 3, S, S) in [-1, 1], at `size` px."""
    out = []
    for i in range(0, len(images), 128):
        x = torch.nn.functional.interpolate(images[i : i + 128], size=size, mode="bilinear", align_corners=False)
        out.append(pooled(net(x.contiguous(memory_format=torch.channels_last))).double().cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def sample_features(net: EfficientNetLite0, G: nn.Module, n: int, device: torch.device) -> np.ndarray:
    gen = torch.Generator().manual_seed(0)
    imgs = torch.cat([G(sample_latents(G, min(128, n - i), gen).to(device)) for i in range(0, n, 128)])
    return features_of(net, imgs)


def snapshot_points(run: Path, every: int = 1) -> list[tuple[Path, float]]:
    """(file, CPU minutes) of a run's G snapshots, oldest first."""
    files = sorted((run / "snapshots").glob("G-*.safetensors"))
    out = []
    for f in files[::-1][::every][::-1]:
        with safe_open(str(f), "pt") as sf:
            meta = sf.metadata() or {}
        out.append((f, float(meta.get("cpu_seconds", meta.get("seconds", "nan"))) / 60))
    return out


def quality_curve(opts: CurveOptions) -> Path:
    device = pick_device(opts.device)
    net = load_features().to(device)
    first = read_config(opts.runs[0] / "checkpoint")
    data = opts.load_data(model_config(first).image_size)
    idx = data.val_idx[: opts.faces]
    real = features_of(net, to_model_input(data.tensor()[torch.from_numpy(idx)], device, channels_last=False))
    result: dict[str, object] = {"faces": len(idx), "runs": {}}
    plt.figure(figsize=(7, 4.5))
    for run in opts.runs:
        cfg = model_config(read_config(run / "checkpoint"))
        points = []
        for f, minutes in snapshot_points(run, opts.every):
            G = build_generator(cfg)
            G.load_state_dict(load_file(str(f)))
            fd = frechet(real, sample_features(net, G.to(device).eval(), len(idx), device))
            points.append((minutes, fd))
            print(f"{run.name} {f.name}: {minutes:6.1f} CPU min  FD {fd:8.2f}", flush=True)
        result["runs"][run.name] = {"family": cfg.family, "points": points}  # type: ignore[index]
        recipe = cfg.family + (
            f" + projected heads x{cfg.projected_weight:g}" if cfg.projected_weight and cfg.conditions else ""
        )
        plt.plot(
            [p[0] for p in points], [p[1] for p in points], marker="o", label=f"{recipe} ({run.parent.name}/{run.name})"
        )
    if opts.reference is not None:
        model = load_checkpoint(opts.reference, device, parts=("G",))
        fd = frechet(real, sample_features(net, model.G, len(idx), device))
        train = model.meta.get("training", {})
        recorded = float(train.get("seconds", float("nan"))) * float(train.get("threads", 2)) / 60
        minutes = opts.reference_cpu_minutes or recorded
        result["reference"] = {"path": str(opts.reference), "fd": fd, "cpu_minutes": minutes}
        plt.axhline(fd, color="grey", linestyle="--", label=f"{opts.reference.name}: {minutes:.0f} CPU min")
        print(f"reference {opts.reference}: FD {fd:.2f} after {minutes:.0f} CPU min", flush=True)
    plt.xlabel("CPU minutes (wall seconds x threads)")
    plt.ylabel("Frechet distance, EfficientNet-Lite0 features")
    plt.yscale("log")
    plt.legend()
    plt.grid(alpha=0.3)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    plt.savefig(opts.out, dpi=110, bbox_inches="tight")
    plt.close()
    opts.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    return opts.out
