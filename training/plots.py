"""Images people look at: sample grids and loss curves, written as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from models.pixels import to_uint8


def grid(images: Tensor, nrow: int | None = None, pad: int = 2) -> Image.Image:
    """Tile a batch of images into one picture, nrow images per row."""
    arr = to_uint8(images.detach().float().cpu()).numpy()
    b, s = arr.shape[0], arr.shape[1]
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    out = np.full((rows * (s + pad) + pad, nrow * (s + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(arr):
        r, c = divmod(i, nrow)
        out[pad + r * (s + pad) : pad + r * (s + pad) + s, pad + c * (s + pad) : pad + c * (s + pad) + s] = img
    return Image.fromarray(out)


def save_grid(images: Tensor, path: Path, nrow: int | None = None) -> Path:
    grid(images, nrow).save(path)
    return path


def save_loss_plot(history: dict[str, list[float]], steps: list[int], path: Path, title: str) -> Path:
    """One line per loss against the training step, smoothed over ~1% of the run. A loss with fewer
    values than steps began later (a term turned on at a resume): its values are the last steps'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    window = max(1, len(steps) // 100)
    kernel = np.ones(window) / window
    for name, values in history.items():
        if values:
            smooth = np.convolve(values, kernel, mode="valid")
            ax.plot(steps[len(steps) - len(smooth) :], smooth, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
