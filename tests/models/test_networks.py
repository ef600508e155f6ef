from __future__ import annotations

import pytest
import torch

from models.networks import ENCODER_KINDS, ConvEncoder, Discriminator, Generator, ModelConfig, build_encoder, update_ema


@pytest.mark.parametrize("size", [64, 128])
def test_shapes_at_both_resolutions(size: int) -> None:
    cfg = ModelConfig.tiny(image_size=size)
    z = torch.randn(3, cfg.nz)
    img = Generator(cfg)(z)
    assert img.shape == (3, 3, size, size)
    assert img.min() >= -1 and img.max() <= 1  # tanh output
    assert Discriminator(cfg)(img).shape == (3,)
    for kind in ENCODER_KINDS:
        assert build_encoder(ModelConfig.tiny(image_size=size, encoder=kind))(img).shape == (3, cfg.nz)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="image_size"):
        ModelConfig(image_size=96)
    with pytest.raises(ValueError, match="encoder"):
        ModelConfig(encoder="vit")
    with pytest.raises(ValueError, match="nz"):
        ModelConfig(nz=0)


def test_dcgan_init_statistics() -> None:
    g = Generator(ModelConfig(ngf=32))
    w = g.main[0].weight
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002


def test_transfer_encoder_starts_from_discriminator() -> None:
    cfg = ModelConfig.tiny()
    d = Discriminator(cfg)
    e = ConvEncoder(cfg).transfer_from(d)
    for a, b in zip(e.trunk.state_dict().values(), d.trunk.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # a copy, not shared storage: training E must not move D
    next(e.trunk.parameters()).data.add_(1)
    assert not torch.equal(next(e.trunk.parameters()), next(d.trunk.parameters()))


def test_ema_moves_towards_model() -> None:
    cfg = ModelConfig.tiny()
    a, b = Generator(cfg), Generator(cfg)
    before = (next(a.parameters()) - next(b.parameters())).abs().sum()
    update_ema(a, b, 0.5)
    after = (next(a.parameters()) - next(b.parameters())).abs().sum()
    assert torch.isclose(after, before / 2)
