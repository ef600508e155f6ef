"""Pixel losses between images in [-1, 1], each returning one value per sample (B,)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]


def _gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity (Wang et al. 2004) per sample, on images in [-1, 1]; 1 = equal."""
    a, b = (a.float() + 1) / 2, (b.float() + 1) / 2  # SSIM constants assume a [0, 1] range
    c = a.shape[1]
    w = _gaussian_window(window, sigma, c, a)
    mu_a = F.conv2d(a, w, groups=c)
    mu_b = F.conv2d(b, w, groups=c)
    var_a = F.conv2d(a * a, w, groups=c) - mu_a**2
    var_b = F.conv2d(b * b, w, groups=c) - mu_b**2
    cov = F.conv2d(a * b, w, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


def l2(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error per sample; `mask` (B or 1, 1, H, W) in [0, 1] weights pixels."""
    d = (a.float() - b.float()) ** 2
    return _masked_mean(d, mask)


def l1(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute error per sample, optionally under a pixel mask."""
    return _masked_mean((a.float() - b.float()).abs(), mask)


def _masked_mean(d: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return d.flatten(1).mean(1)
    m = mask.expand_as(d)
    return (d * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1e-8)


def ssim_loss(a: Tensor, b: Tensor) -> Tensor:
    return 1 - ssim(a, b)


LOSSES: dict[str, LossFn] = {
    "l2": l2,
    "l1": l1,
    "ssim": ssim_loss,
    "l2+ssim": lambda a, b: l2(a, b) + ssim_loss(a, b),
    "l1+ssim": lambda a, b: l1(a, b) + ssim_loss(a, b),
}


def get_loss(name: str) -> LossFn:
    """A pixel loss by name (one of LOSSES); a clear error for any other name."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
