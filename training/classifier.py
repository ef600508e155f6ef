"""`python -m training classifier`: a CNN that predicts the 40 attributes of a real face.

`evaluate` uses it as the judge of edits: did the edit reach its attribute, and did the
other attributes stay as they were. Stored as classifier.safetensors + classifier.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm

from training.data import CelebA, batches, to_model_input
from training.folders import DataOptions
from training.runs import pick_device

WEIGHTS, CONFIG = "classifier.safetensors", "classifier.json"


class AttributeClassifier(nn.Module):
    """(B, 3, S, S) in [-1, 1] -> (B, K) attribute logits."""

    def __init__(self, n_attributes: int = 40, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch_in = 3
        for mult in (1, 2, 4, 8):  # S -> S/16 spatially
            ch = width * mult
            layers += [nn.Conv2d(ch_in, ch, 3, 2, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
            ch_in = ch
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(ch_in, n_attributes)
        self.n_attributes, self.width = n_attributes, width

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x).mean((2, 3)))


@dataclass(frozen=True, kw_only=True)
class ClassifierOptions(DataOptions):
    out: Path = Path("runs/classifier")
    width: int = 32
    batch: int = 128
    lr: float = 1e-3
    kimg: float = 60.0
    image_size: int = 64


def train_classifier(opts: ClassifierOptions, data: CelebA | None = None) -> Path:
    device = pick_device(opts.device)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    data = data or opts.load_data(opts.image_size)
    labels = torch.from_numpy(data.attributes.labels.astype(np.float32))
    clf = AttributeClassifier(len(data.attributes.names), opts.width).to(device)
    optim = torch.optim.Adam(clf.parameters(), opts.lr)
    images = data.tensor()
    total = max(1, round(opts.kimg * 1000 / opts.batch))
    stream = batches(images, data.train_idx, opts.batch, rng)
    for _ in (bar := tqdm(range(total), desc="classifier", unit="step")):
        idx, x_u8 = next(stream)
        loss = F.binary_cross_entropy_with_logits(clf(to_model_input(x_u8, device)), labels[idx].to(device))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    clf.eval()
    acc = accuracy(clf, images, labels, data.val_idx, device)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.cpu().contiguous() for k, v in clf.state_dict().items()}, str(out / WEIGHTS))
    meta = {
        "names": data.attributes.names,
        "width": opts.width,
        "image_size": data.image_size,
        "val_accuracy": dict(zip(data.attributes.names, acc.tolist(), strict=True)),
        "val_images": int(len(data.val_idx)),
    }
    (out / CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    print(f"mean val accuracy {acc.mean():.3f} over {len(acc)} attributes")
    return out


@torch.no_grad()
def accuracy(clf: AttributeClassifier, images: Tensor, labels: Tensor, idx: np.ndarray, device: torch.device) -> Tensor:
    """Per-attribute accuracy on faces idx: (K,)."""
    correct = torch.zeros(labels.shape[1])
    for i in range(0, len(idx), 256):
        sel = torch.from_numpy(idx[i : i + 256])
        pred = clf(to_model_input(images[sel], device)).cpu() > 0
        correct += (pred == labels[sel].bool()).float().sum(0)
    return correct / max(1, len(idx))


def load_classifier(path: Path, device: torch.device | str = "cpu") -> tuple[AttributeClassifier, dict[str, object]]:
    meta = json.loads((Path(path) / CONFIG).read_text())
    clf = AttributeClassifier(len(meta["names"]), int(meta["width"]))
    clf.load_state_dict(load_file(str(Path(path) / WEIGHTS)))
    return clf.to(device).eval(), meta
