"""Every generative family trains end to end on a tiny generated data set, and the service
serves its checkpoint without special cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import load_file

from app.main import create_app
from app.settings import Settings
from models import load_checkpoint
from tests.conftest import wait_for_job
from training.__main__ import main
from training.families import CGAN, attribute_loss
from training.options import CganOptions

TINY = ["--ngf", "4", "--ndf", "4", "--nz", "8", "--batch", "8", "--device", "cpu", "--kimg", "0.032"]
FAMILIES = {  # command line -> family, whether an encoder is learnt, whether D can judge images
    ("gan", "--loss", "dcgan"): ("dcgan", False, True),
    ("gan", "--loss", "wgan-gp"): ("wgan-gp", False, True),
    ("vae",): ("vae", True, False),
    ("vaegan",): ("vaegan", True, True),
    ("bigan",): ("bigan", True, False),
    ("cgan", "--projected-weight", "0.1"): ("cgan", False, True),  # G(z, y) vs the conv + projected D; E after
}


@pytest.fixture(scope="module")
def trained(celeba_half: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each family trained for 4 steps, then given its attribute directions."""
    tmp = tmp_path_factory.mktemp("families")
    common = ["--data", str(celeba_half), "--cache-dir", str(tmp / "cache")]
    runs: dict[str, Path] = {}
    for command, (family, learns_e, _) in FAMILIES.items():
        outdir = tmp / family
        assert main([command[0], *command[1:], *common, *TINY, "--snapshot-every", "2", "--outdir", str(outdir)]) == 0
        (run,) = outdir.iterdir()
        if not learns_e:  # the GANs get their post-hoc encoder
            enc = ["--batch", "8", "--device", "cpu", "--kimg", "0.016", "--outdir", str(outdir)]
            assert main(["encoder", *common, "--gan", str(run / "checkpoint"), *enc]) == 0
            run = next(p for p in outdir.iterdir() if "encoder" in p.name)
        ckpt = run / "checkpoint"
        assert main(["attributes", *common, "--checkpoint", str(ckpt), "--device", "cpu", "--refine-steps", "2"]) == 0
        runs[family] = run
    return runs


@pytest.mark.parametrize("family", [f for f, _, _ in FAMILIES.values()])
def test_each_family_trains_and_saves_the_same_checkpoint_format(trained: dict[str, Path], family: str) -> None:
    run = trained[family]
    _, learns_e, has_d = next(v for v in FAMILIES.values() if v[0] == family)
    model = load_checkpoint(run / "checkpoint")
    assert model.cfg.family == family and model.E is not None and (model.D is not None) == has_d
    assert model.directions is not None and model.directions.shape == (40, model.cfg.latent_size)
    assert model.meta["training"]["seconds_per_kimg"] > 0
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert model.G(model.E(x)).shape == (2, 3, 64, 64)
    grids = sorted(run.glob("reconstructions-*.png")) if learns_e else sorted(run.parent.glob("*/samples-*.png"))
    assert grids and Image.open(grids[-1]).size[0] > 64
    assert (run / "loss.png").is_file()


def test_a_family_resumes_where_it_stopped(trained: dict[str, Path], celeba_half: Path, tmp_path: Path) -> None:
    run = trained["vaegan"]
    common = ["--data", str(celeba_half), "--cache-dir", str(tmp_path / "cache")]
    more = [a if a != "0.032" else "0.064" for a in TINY]
    assert main(["vaegan", *common, *more, "--snapshot-every", "2", "--resume", str(run)]) == 0
    assert load_checkpoint(run / "checkpoint").meta["training"]["step"] == 8


def test_the_attribute_loss_counts_only_known_labels() -> None:
    logits = torch.tensor([[4.0, -4.0, 9.0], [0.0, 0.0, -9.0]])
    signed = torch.tensor([[1.0, -1.0, 0.0], [1.0, 0.0, 0.0]])  # 0: the set has no such label
    expected = (2 * F.softplus(torch.tensor(-4.0)) + math.log(2)) / 2  # summed per face, averaged
    assert attribute_loss(logits, signed).item() == pytest.approx(expected.item())
    assert attribute_loss(logits, torch.zeros_like(signed)).item() == 0


def test_g_pays_the_classifier_only_once_it_has_learnt(celeba_half: Path) -> None:
    opts = CganOptions(data=celeba_half, ngf=4, ndf=4, nz=8, device="cpu", classify=2.0, classify_warmup=8)
    fam = CGAN(opts.model_config(), opts, torch.device("cpu"))
    assert fam.C is not None
    weights = []
    for _ in range(10):
        weights.append(fam.classify_weight())
        fam.optims["C"].zero_grad()
        fam.C(torch.randn(4, fam.C.in_features)).square().sum().backward()
        fam.optims["C"].step()
    assert weights == [0, 0, 0, 0, 0, 0.5, 1.0, 1.5, 2.0, 2.0]


@pytest.mark.parametrize("labels_only", [True, False])
def test_the_classifier_can_teach_only_how_y_moves_a_face(celeba_half: Path, labels_only: bool) -> None:
    opts = CganOptions(data=celeba_half, ngf=4, ndf=4, nz=8, device="cpu", classify_labels_only=labels_only)
    fam = CGAN(opts.model_config(), opts, torch.device("cpu"))
    assert fam.C is not None
    w = fam.G.sample(4)  # type: ignore[operator]
    fake = fam.G(w)
    paid = attribute_loss(fam.C(fam.attributes_seen(fake)), w[:, 8:])
    fam.backward_g(fake.mean() * 0, paid)  # D's terms left out: what moves is C's doing
    labels = {id(p) for p in fam.label_weights}
    moved = {id(p) for p in fam.G.parameters() if p.grad is not None and p.grad.abs().max() > 0}
    assert moved & labels
    assert bool(moved - labels) != labels_only


def test_a_cgan_run_gains_the_classifier_term_on_resume(celeba_half: Path, tmp_path: Path) -> None:
    common = ["--data", str(celeba_half), "--cache-dir", str(tmp_path / "cache"), *TINY, "--snapshot-every", "2"]
    assert main(["cgan", *common, "--classify", "0", "--outdir", str(tmp_path)]) == 0
    (run,) = tmp_path.glob("*cgan*")
    assert not any(k.startswith("C.") for k in load_file(str(run / "resume.safetensors")))
    more = [a if a != "0.032" else "0.064" for a in common]
    assert main(["cgan", *more, "--classify", "1", "--resume", str(run)]) == 0
    tensors = load_file(str(run / "resume.safetensors"))
    assert tensors["C.weight"].shape[0] == len(load_checkpoint(run / "checkpoint").cfg.conditions)
    assert load_checkpoint(run / "checkpoint").meta["training"]["step"] == 8


def test_a_cgan_run_starts_from_a_dcgan_checkpoint(trained: dict[str, Path], celeba_half: Path, tmp_path: Path) -> None:
    common = ["--data", str(celeba_half), "--cache-dir", str(tmp_path / "cache"), *TINY, "--outdir", str(tmp_path)]
    with pytest.raises(ValueError, match="same nz"):  # a different width is refused before any step
        main(["cgan", *[a if a != "4" else "8" for a in common], "--warm-start", str(trained["dcgan"] / "checkpoint")])
    with pytest.raises(ValueError, match="from a dcgan or wgan-gp"):
        main(["cgan", *common, "--warm-start", str(trained["vae"] / "checkpoint")])
    assert main(["cgan", *common, "--warm-start", str(trained["dcgan"] / "checkpoint")]) == 0
    (run,) = tmp_path.glob("*cgan*")
    assert load_checkpoint(run / "checkpoint").meta["training"]["step"] == 4


def test_the_conditional_family_edits_its_attributes_along_their_labels(trained: dict[str, Path]) -> None:
    model = load_checkpoint(trained["cgan"] / "checkpoint")
    cfg = model.cfg
    assert cfg.latent_size == cfg.nz + len(cfg.conditions) and "Smiling" in cfg.conditions
    k = cfg.conditions.index("Smiling")
    v = model.direction("Smiling")
    assert v[: cfg.nz].abs().max() == 0 and v[cfg.nz + k] > 0 and v[cfg.nz :].count_nonzero() == 1
    assert sorted(model.meta["directions"]["label_axes"]) == sorted(cfg.conditions)
    w = model.E(torch.rand(3, 3, 64, 64) * 2 - 1)
    assert w.shape == (3, cfg.latent_size)
    # y moves the picture: the same z with Smiling on and off renders two different faces
    on, off = w[:1].clone(), w[:1].clone()
    on[0, cfg.nz + k], off[0, cfg.nz + k] = 1.0, -1.0
    assert (model.G(on) - model.G(off)).abs().mean() > 0
    assert model.D is not None and model.D(model.G(on), on[:, cfg.nz :]).shape == (1,)
    # the prior it samples from is the training data's label rates
    from models.networks import sample_latents

    y = sample_latents(model.G, 64, torch.Generator().manual_seed(0))[:, cfg.nz :]
    assert set(y.unique().tolist()) <= {-1.0, 1.0}


@pytest.mark.parametrize("family", ["vae", "bigan", "wgan-gp", "cgan"])
def test_the_service_serves_any_family(trained: dict[str, Path], family: str, photos: Path) -> None:
    with TestClient(create_app(Settings(checkpoint=trained[family] / "checkpoint", redis_url=None))) as client:
        enc = client.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())})
        assert enc.status_code == 200, enc.text
        lid = enc.json()["latent_id"]
        assert client.post("/edit", params={"latent_id": lid, "attribute": "Smiling"}).status_code == 200
        job = client.post("/edits/optimized", json={"latent_id": lid, "steps": 3, "lambda2": 0.01})
        if family in ("vae", "bigan"):  # no image discriminator: said so, and it runs without one
            assert job.status_code == 422 and family in job.json()["detail"] and "lambda2=0" in job.json()["detail"]
            job = client.post("/edits/optimized", json={"latent_id": lid, "steps": 3, "lambda2": 0})
        assert job.status_code == 202, job.text
        assert wait_for_job(client, job.json()["job_id"])["status"] == "succeeded"
