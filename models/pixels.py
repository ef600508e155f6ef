"""The one pixel scale conversion: uint8 images (what photos and crops are) <-> float images in
[-1, 1] (what the networks take and give).

Every conversion in the project goes through this pair, so a face the service encodes, a batch
a training loop feeds and a sample a script saves are scaled the same way.
"""

from __future__ import annotations

from torch import Tensor

LUMA = (0.299, 0.587, 0.114)  # a pixel's luminance from R, G, B (ITU-R BT.601): grey, and how bright


def from_uint8(images: Tensor) -> Tensor:
    """uint8 (or float 0-255) images (B, S, S, 3) -> float32 (B, 3, S, S) in [-1, 1]."""
    return images.permute(0, 3, 1, 2).float().div(127.5).sub(1)


def to_uint8(x: Tensor) -> Tensor:
    """Images (B, 3, S, S) in [-1, 1] -> uint8 (B, S, S, 3), clamped and rounded."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1)
