"""The judge: its two sides weighed alike, its faces seen as photos give them, its recall per side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.augment import photo_view
from training.classifier import AttributeClassifier, accuracy, side_weight
from training.data import load_celeba, to_model_input


def test_side_weight_makes_each_attributes_two_sides_weigh_alike() -> None:
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    known = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # the last face's second is unknown
    w = side_weight(labels, known)
    assert torch.allclose(w, torch.tensor([3.0, 2.0]))  # 3 without / 1 with; 2 without / 1 with (known only)
    per_side = labels * known * w + (1 - labels) * known  # the loss's weight of every face
    assert torch.allclose((per_side * labels).sum(0), (per_side * (1 - labels) * known).sum(0))


def test_photo_view_reads_faces_as_photos_give_them(celeba_half: Path, cache_dir: Path) -> None:
    data = load_celeba(celeba_half, 64, cache_dir=cache_dir)
    x = to_model_input(data.tensor()[:48], torch.device("cpu"), channels_last=False).repeat(4, 1, 1, 1)
    torch.manual_seed(0)
    y = photo_view(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert (y - x).abs().mean() > 0.02  # moved: another alignment
    grey = (y[:, 0] - y[:, 1]).abs().amax((1, 2)) < 1e-6
    assert 10 <= int(grey.sum()) <= 50  # a seventh of 192 is 27
    dim = (y.mean((1, 2, 3)) + 1) < 0.8 * (x.mean((1, 2, 3)) + 1)
    assert 15 <= int(dim.sum()) <= 80  # a fifth of 192, most of them darker by more than a fifth
    colour = ~grey
    assert (y[colour, 0] - y[colour, 2]).abs().mean() > 0.05  # the others keep their colour


def test_accuracy_counts_each_side_and_only_known_labels() -> None:
    clf = AttributeClassifier(n_attributes=2, width=4).eval()
    with torch.no_grad():
        clf.head.weight.zero_()
        clf.head.bias.copy_(torch.tensor([1.0, -1.0]))  # sees the first everywhere, the second nowhere
    images = torch.zeros(6, 8, 8, 3, dtype=torch.uint8)
    labels = torch.tensor([[1, 1], [1, 0], [0, 0], [0, 0], [0, 1], [1, 1]], dtype=torch.float32)
    known = torch.ones_like(labels)
    known[5, 1] = 0
    acc, recall = accuracy(clf, images, labels, known, np.arange(6), torch.device("cpu"))
    assert torch.allclose(acc, torch.tensor([3 / 6, 3 / 5]))
    assert torch.allclose(recall, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))  # (without, with) per attribute
