"""`python -m training attributes`: one latent direction per CelebA attribute.

v_a = mean(E(x) | x has a) - mean(E(x) | x lacks a), over the training split, with the
counts behind each mean. Adding s * v_a to a face's latent moves it towards the attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.checkpoint import load_checkpoint, save_checkpoint
from training.data import DataOptions, to_model_input
from training.runs import pick_device


@dataclass(frozen=True, kw_only=True)
class AttributeOptions(DataOptions):
    checkpoint: Path  # a folder with G and E; the directions are written into `out`
    out: Path | None = None  # default: the checkpoint folder itself
    batch: int = 256
    cache_dir: Path | None = None


@torch.no_grad()
def encode_all(
    E: torch.nn.Module, images: torch.Tensor, idx: np.ndarray, device: torch.device, batch: int
) -> torch.Tensor:
    """E(x) for faces idx: (len(idx), nz) on the CPU, with a progress bar."""
    out = []
    for i in tqdm(range(0, len(idx), batch), desc="encoding faces", unit="batch"):
        out.append(E(to_model_input(images[torch.from_numpy(idx[i : i + batch])], device)).float().cpu())
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


def compute_attributes(opts: AttributeOptions) -> Path:
    device = pick_device(opts.device)
    model = load_checkpoint(opts.checkpoint, device)
    if model.E is None:
        raise ValueError(f"{opts.checkpoint}: has no encoder (E.*); train one with `encoder` first")
    data = opts.load_data(model.cfg.image_size)
    z = encode_all(model.E, data.tensor(), data.train_idx, device, opts.batch)
    d, counts = directions_from_latents(z, data.attributes.labels[data.train_idx])
    model.directions = d
    model.attribute_names = list(data.attributes.names)
    model.meta["attributes"] = {
        name: {"with": int(c[0]), "without": int(c[1]), "norm": float(d[i].norm())}
        for i, (name, c) in enumerate(zip(data.attributes.names, counts, strict=True))
    }
    model.meta.setdefault("default_strength", 1.0)
    out = opts.out or opts.checkpoint
    save_checkpoint(out, model.to("cpu"))
    for name, c in zip(data.attributes.names, counts, strict=True):
        print(f"{name:20s} with {c[0]:6d}  without {c[1]:6d}")
    return Path(out)
