"""`python -m training guides`: fit the editor's frozen guides (models/guides.py) on labelled faces.

The trunk is frozen, so features are computed once per augmented pass over the training faces
(`guide_view`, the view the editor's edits are judged through) and the heads are fitted on them with Adam; the
held-out faces give each member's accuracy per attribute, written into guides.json. With
`--tune-steps N` the trunk is then fine-tuned with the heads, end to end, on the same view, and is
stored with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from models.editnet import EDITOR_ATTRIBUTES, HEAD_GEOMETRY
from models.guides import GuideConfig, Guides, save_guides
from training.augment import guide_view
from training.data import CelebA, to_model_input
from training.folders import DataOptions
from training.runs import jsonable, pick_device


@dataclass(frozen=True, kw_only=True)
class GuideOptions(DataOptions):
    out: Path = Path("runs/guides")
    attributes: tuple[str, ...] = EDITOR_ATTRIBUTES
    image_size: int = 64  # the faces' size; the editor's output is resized to it
    passes: int = 3  # augmented passes over the training faces (the first unaugmented)
    steps: int = 1500  # Adam steps on the features
    hidden: int = 256
    batch: int = 256
    tune_steps: int = 0  # then fine-tune the trunk with the heads, end to end, for this many steps
    tune_batch: int = 64
    tune_lr: float = 1e-4  # the trunk's (the heads' is 3x)

    def __post_init__(self) -> None:
        if self.passes < 1 or self.steps < 1 or self.batch < 1 or self.tune_steps < 0 or self.tune_batch < 1:
            raise ValueError("need passes, steps, batch and tune_batch >= 1 and tune_steps >= 0")


@torch.no_grad()
def _features(guides: Guides, images: Tensor, idx: np.ndarray, device: torch.device, augment: bool) -> list[Tensor]:
    parts: list[list[Tensor]] = []
    for i in tqdm(range(0, len(idx), 256), desc="guide features", unit="batch", leave=False):
        x = to_model_input(images[torch.from_numpy(idx[i : i + 256])], device)
        if augment:
            x = guide_view(x)
        parts.append([f.float().cpu() for f in guides.features(x)])
    return [torch.cat(level) for level in zip(*parts, strict=True)]


def _loss(logits: Tensor, target: Tensor) -> Tensor:
    """BCE of the members' logits (M, B, K) on the known labels of target (B, K) in {+1, -1, 0}."""
    known = (target != 0).float()
    bce = F.binary_cross_entropy_with_logits(logits, (target > 0).float().expand_as(logits), reduction="none")
    return (bce * known).sum() / (known.sum() * logits.shape[0]).clamp_min(1)


def _tune(guides: Guides, images: Tensor, idx: np.ndarray, y: Tensor, opts: GuideOptions, device: torch.device) -> None:
    """Fine-tune the trunk with the heads (fitted first on its frozen features) on the augmented view:
    ImageNet features at 64 px see a smile poorly (MODEL_CARD)."""
    trunk = guides.net.requires_grad_(True)
    groups = [{"params": trunk.parameters(), "lr": opts.tune_lr},
              {"params": guides.head_parameters(), "lr": 3 * opts.tune_lr}]  # fmt: skip
    optim = torch.optim.AdamW(groups, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(opts.seed + 1)
    faces = torch.from_numpy(idx)
    for _ in (bar := tqdm(range(opts.tune_steps), desc="tune", unit="step")):
        sel = faces[torch.randint(0, len(faces), (opts.tune_batch,), generator=gen)]
        loss = _loss(guides(guide_view(to_model_input(images[sel], device))), y[sel].to(device))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    trunk.requires_grad_(False)


def fit_guides(opts: GuideOptions, data: CelebA | None = None) -> Path:
    device = pick_device(opts.device)
    torch.manual_seed(opts.seed)
    data = data or opts.load_data(opts.image_size, HEAD_GEOMETRY)
    signed = torch.from_numpy(data.signed_labels(opts.attributes))  # (N, K) +1 / -1 / 0 unknown
    guides = Guides(GuideConfig(tuple(opts.attributes), opts.image_size, opts.hidden, opts.tune_steps > 0)).to(device)
    images = data.tensor()
    feats = [_features(guides, images, data.train_idx, device, augment=p > 0) for p in range(opts.passes)]
    train = [torch.cat(level) for level in zip(*feats, strict=True)]
    y = signed[torch.from_numpy(np.tile(data.train_idx, opts.passes))]
    optim = torch.optim.AdamW(guides.head_parameters(), 1e-3, weight_decay=1e-3)
    gen = torch.Generator().manual_seed(opts.seed)
    for _ in (bar := tqdm(range(opts.steps), desc="guides", unit="step")):
        sel = torch.randint(0, len(y), (opts.batch,), generator=gen)
        logits = guides.heads([level[sel].to(device) for level in train])  # (2, B, K)
        loss = _loss(logits, y[sel].to(device))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    del train, feats
    if opts.tune_steps:
        _tune(guides, images, data.train_idx, signed, opts, device)
    guides.eval()
    val = _features(guides, images, data.val_idx, device, augment=False)
    with torch.no_grad():
        pred = guides.heads([level.to(device) for level in val]).cpu() > 0  # (2, V, K)
    truth = signed[torch.from_numpy(data.val_idx)]
    known = truth != 0
    correct = (pred == (truth > 0)) & known
    share = correct.sum(1) / known.sum(0).clamp_min(1)  # (2, K)
    accuracy = {member: dict(zip(opts.attributes, share[m].tolist(), strict=True))
                for m, member in enumerate(("linear", "mlp"))}  # fmt: skip
    meta = {"options": jsonable(opts), "held_out_accuracy": accuracy, "held_out_faces": int(len(data.val_idx))}
    out = save_guides(opts.out, guides, meta)
    print({m: {a: round(v, 3) for a, v in acc.items()} for m, acc in accuracy.items()})
    return out
