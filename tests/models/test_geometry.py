from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models import FaceModel, ModelConfig, load_checkpoint, save_checkpoint
from models.checkpoint import CheckpointError
from models.geometry import CELEBA, FaceGeometry, similarity
from models.latent_math import RefineOptions, refine_latent
from models.losses import l2
from tests.conftest import calibrate_batchnorm


def test_similarity_recovers_rotation_scale_and_shift() -> None:
    src = np.random.default_rng(0).random((5, 2)) * 100
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m = similarity(src, src @ rot.T + shift)
    assert np.allclose(m[:, :2], rot, atol=1e-9) and np.allclose(m[:, 2], shift, atol=1e-9)


def test_template_sits_inside_the_crop_eyes_level_mouth_below() -> None:
    t = CELEBA.template(64)
    assert t.shape == (5, 2) and (t > 0).all() and (t < 64).all()
    assert abs(t[0, 1] - t[1, 1]) < 1 and t[0, 0] < t[2, 0] < t[1, 0] and t[3, 1] > t[2, 1] > t[0, 1]


def test_checkpoint_carries_its_own_face_geometry(tmp_path: Path) -> None:
    m = FaceModel.new(ModelConfig.tiny())
    m.geometry = FaceGeometry(frame=(100, 100), crop_box=(10, 10, 90, 90), landmarks=((30, 40),) * 5)
    save_checkpoint(tmp_path, m)
    assert load_checkpoint(tmp_path).geometry == m.geometry
    config = json.loads((tmp_path / "config.json").read_text())
    config["face_geometry"]["crop_box"] = [50, 50, 10, 10]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="face_geometry"):
        load_checkpoint(tmp_path)


def test_refinement_moves_towards_the_face_and_ignores_masked_pixels() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    m = FaceModel.new(cfg)
    calibrate_batchnorm(m.G)
    with torch.no_grad():
        x = m.G(torch.randn(2, cfg.nz))  # faces G can draw, so refinement has somewhere to go
    z0 = torch.randn(2, cfg.nz)
    mask = torch.ones(1, 1, 64, 64)
    mask[..., :, 32:] = 0  # the right half is padding
    opts = RefineOptions(steps=40, patience=40)
    z, stats = refine_latent(m.G, x, z0, mask, opts)
    assert stats.steps == 40 and stats.l2 < stats.l2_start
    assert l2(m.G(z), x, mask).mean() < l2(m.G(z0), x, mask).mean()
    scribbled = x.clone()
    scribbled[..., 32:] = torch.rand_like(scribbled[..., 32:])  # change only what the mask hides
    z2, _ = refine_latent(m.G, scribbled, z0, mask, opts)
    assert torch.allclose(z, z2, atol=1e-5)
    short, st = refine_latent(m.G, x, z0, mask, RefineOptions(steps=500, budget_s=0.0))
    assert st.steps == 1  # the time budget ends it after one step
