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


def test_a_warm_started_cgan_is_the_dcgan_it_started_from_for_any_labels() -> None:
    from models.projected import CondGenerator, ProjectedDiscriminator, warm_start

    torch.manual_seed(0)
    G0, D0 = Generator(ModelConfig(nz=8, ngf=4, ndf=4)), Discriminator(ModelConfig(nz=8, ngf=4, ndf=4))
    for m in [*G0.modules(), *D0.modules()]:  # a trained net's BatchNorms, not the identity of a fresh one
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2)
            torch.nn.init.normal_(m.weight, 1, 0.3)
            torch.nn.init.normal_(m.bias, 0, 0.3)
    last = G0.main[-2]
    assert isinstance(last, torch.nn.ConvTranspose2d)
    torch.nn.init.normal_(last.weight, 0, 0.5)  # its last layer drawing more than grey
    cfg = ModelConfig(
        nz=8, ngf=4, ndf=4, family="cgan", encoder="features", conditions=("Male", "Smiling"), projected_weight=0.0
    )
    G, D = CondGenerator(cfg), ProjectedDiscriminator(cfg)
    warm_start(G, D, G0, D0)
    for net in (G0, D0, G, D):
        net.eval()
    z, y = torch.randn(5, 8), torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [0.3, 2.0]])
    with torch.no_grad():
        x = G0(z)
        assert x.std() > 0.05  # a picture, so the comparisons below can fail
        assert torch.allclose(G(torch.cat([z, y], 1)), x, atol=1e-5)
        assert torch.allclose(D(x, y), D0(x), atol=1e-5)
    with pytest.raises(ValueError, match="same nz"):
        warm_start(CondGenerator(ModelConfig(nz=8, ngf=8, family="cgan", conditions=("Male",))), D, G0, D0)
