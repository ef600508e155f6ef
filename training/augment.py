"""DiffAugment (Zhao et al. 2020): the same random, differentiable augmentations applied to real
and generated images before the discriminator sees them, so D cannot memorise 10k-40k faces and
G still gets gradients through them. Policy "color,translation,cutout", as in the paper.

Images are (B, 3, H, W) in [-1, 1]; each sample gets its own random draw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from models.pixels import LUMA


def _color(x: Tensor) -> Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device) - 0.5)  # brightness
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device) * 2) + mean  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device) + 0.5) + mean  # contrast


def _translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    b, _, h, w = x.shape
    sh, sw = round(h * ratio), round(w * ratio)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    yy = (gy[None] + dy + 1).clamp(0, h + 1)
    xx = (gx[None] + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))  # zero border: what slides in is empty
    idx = (yy * (w + 2) + xx).flatten(1)  # (B, H*W) into the padded (H+2) x (W+2) grid
    flat = padded.flatten(2)
    return flat.gather(2, idx[:, None].expand(-1, x.shape[1], -1)).view_as(x)


def _cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    b, _, h, w = x.shape
    ch, cw = round(h * ratio), round(w * ratio)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    inside = ((gy[None] - cy + ch // 2).abs() < ch / 2) & ((gx[None] - cx + cw // 2).abs() < cw / 2)
    return x * (~inside)[:, None].to(x.dtype)


POLICIES = {"color": _color, "translation": _translation, "cutout": _cutout}


def guide_view(x: Tensor, smallest: float = 0.5, noise: float = 0.04) -> Tensor:
    """What a classifier guide sees of x: flipped half the time, DiffAugment's colour and translation,
    resampled through a random lower resolution (down to `smallest` of the side) and with a little
    noise. A texture the editor paints pixel-fine for the guides does not survive it; hair colour,
    a smile or frames do. The guides are fitted on the same view of real faces (training/guides.py)."""
    b, _, h, w = x.shape
    flip = torch.rand(b, device=x.device) < 0.5
    x = diff_augment(torch.where(flip[:, None, None, None], x.flip(3), x), "color,translation")
    scale = smallest + (1 - smallest) * torch.rand(()).item()
    if scale < 0.95:
        small = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True)
        x = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return x + noise * torch.rand(b, 1, 1, 1, device=x.device) * torch.randn_like(x)


def diff_augment(x: Tensor, policy: str = "color,translation,cutout") -> Tensor:
    for name in filter(None, policy.split(",")):
        x = POLICIES[name](x)
    return x.contiguous()


def photo_view(x: Tensor) -> Tensor:
    """What a user's photo does to a face before the judge reads it (training/classifier.py): a
    slightly other alignment (the photo's own landmarks: up to 8 degrees, 7% of scale, 2 px at 64),
    and for some faces a dim exposure (x 0.3-1, on a fifth) or no colour at all (a seventh), the
    kinds `compare-photos` makes. Not a softer resampling: a judge fitted on softened faces as well
    was less often right about real faces on every kind of photo (MODEL_CARD.md)."""
    b = x.shape[0]
    dev = x.device
    angle = (torch.rand(b, device=dev) * 2 - 1) * torch.pi * 8 / 180
    scale = 1 + (torch.rand(b, device=dev) * 2 - 1) * 0.07
    shift = (torch.rand(b, 2, device=dev) * 2 - 1) * 0.07
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    dim = torch.where(torch.rand(b, device=dev) < 0.2, 0.3 + 0.7 * torch.rand(b, device=dev), 1.0)
    x = (x + 1) * dim[:, None, None, None] - 1
    grey = (x * torch.tensor(LUMA, device=dev)[:, None, None]).sum(1, keepdim=True)
    x = torch.where((torch.rand(b, device=dev) < 1 / 7)[:, None, None, None], grey.expand_as(x), x)
    return x.clamp(-1, 1).contiguous()
