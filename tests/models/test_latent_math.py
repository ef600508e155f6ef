from __future__ import annotations

import pytest
import torch

from models.latent_math import OptimizeOptions, lerp, objective, optimize_latent, slerp
from models.losses import LOSSES, get_loss, l1, l2, ssim
from models.networks import Discriminator, Generator, ModelConfig
from tests.conftest import calibrate_batchnorm


@pytest.mark.parametrize("fn", [lerp, slerp])
def test_interpolation_endpoints(fn) -> None:  # type: ignore[no-untyped-def]
    z0, z1 = torch.randn(16), torch.randn(16)
    path = fn(z0, z1, torch.linspace(0, 1, 5))
    assert path.shape == (5, 16)
    assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)


def test_slerp_keeps_norm_between_equal_norm_points() -> None:
    z0 = torch.randn(64)
    z1 = torch.randn(64)
    z1 = z1 / z1.norm() * z0.norm()
    mid = slerp(z0, z1, torch.tensor([0.5]))[0]
    assert torch.isclose(mid.norm(), z0.norm(), rtol=1e-4)
    assert lerp(z0, z1, torch.tensor([0.5]))[0].norm() < z0.norm()  # lerp cuts through the ball


def test_slerp_of_parallel_vectors_falls_back_to_lerp() -> None:
    z = torch.randn(8)
    assert torch.allclose(slerp(z, 2 * z, torch.tensor([0.5]))[0], 1.5 * z)


def test_optimisation_lowers_its_objective_and_reports_progress() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(ngf=16)
    G, D = Generator(cfg), Discriminator(cfg).eval()
    calibrate_batchnorm(G)
    with torch.no_grad():
        target = G(torch.randn(2, cfg.nz))  # reachable: the image of another latent
    z0 = torch.randn(2, cfg.nz)
    opts = OptimizeOptions(steps=15, lr=0.1)
    seen: list[int] = []
    z, history = optimize_latent(G, D, z0, target, opts, progress=lambda s, n, _: seen.append(s))
    assert seen == list(range(1, 16))
    assert len(history) == 16 and history[-1] < 0.9 * history[0]
    with torch.no_grad():
        assert objective(G, D, z, z0, target, opts).mean() < objective(G, D, z0, z0, target, opts).mean()


def test_optimisation_leaves_models_as_it_found_them() -> None:
    cfg = ModelConfig.tiny()
    G, D = Generator(cfg).train(), Discriminator(cfg).train()
    before = [p.clone() for p in G.parameters()]
    optimize_latent(G, D, torch.randn(1, cfg.nz), torch.zeros(1, 3, 64, 64), OptimizeOptions(steps=3))
    assert G.training and D.training
    assert all(p.requires_grad for p in G.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, G.parameters(), strict=True))


def test_mask_limits_the_pixel_loss() -> None:
    a, b = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    b[..., :4] = 1.0  # differ only on the left half
    right = torch.zeros(1, 1, 8, 8)
    right[..., 4:] = 1
    assert l2(a, b, right).item() == 0.0 and l2(a, b).item() == pytest.approx(0.5)
    assert l1(a, b, 1 - right).item() == pytest.approx(1.0)


def test_losses() -> None:
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    assert (ssim(x, y) < 0.95).all()
    for name in LOSSES:
        fn = get_loss(name)
        assert torch.allclose(fn(x, x), torch.zeros(2), atol=1e-5), name
        assert (fn(x, y) > fn(x, x)).all(), name
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("perceptual")
