"""`python -m training encoder`: train E: image -> z against the frozen (EMA) generator.

Loss = pixel loss U(G(E(x)), x) on real faces (L2, L1, SSIM or a sum) plus
latent_weight * ||E(G(z)) - z||^2 on generated faces, as in the GAN-autoencoder study.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.checkpoint import FaceModel, build_any_encoder, load_checkpoint, save_checkpoint
from models.features import perceptual
from models.losses import LOSSES, get_loss, l1, l2, ssim
from models.networks import ENCODER_KINDS, ConvEncoder, Discriminator, sample_latents
from models.projected import FeatureEncoder
from training.data import CelebA, batches, to_model_input
from training.folders import DataOptions
from training.plots import save_grid, save_loss_plot
from training.runs import autocast_for, jsonable, new_run_dir, pick_device, write_options


@dataclass(frozen=True, kw_only=True)
class EncoderOptions(DataOptions):
    gan: Path  # checkpoint folder with G (and D for the transfer encoder)
    outdir: Path = Path("runs")
    encoder: str = "transfer"
    loss: str = "l2"
    latent_weight: float = 1.0
    perceptual_weight: float = 0.0  # + this x the frozen-feature distance of G(E(x)) and x (the cgan encoder)
    batch: int = 64
    lr: float = 2e-4
    kimg: float = 50.0
    snapshot_every: int = 200

    def __post_init__(self) -> None:
        if self.encoder not in ENCODER_KINDS:
            raise ValueError(f"--encoder must be one of {ENCODER_KINDS}")
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {sorted(LOSSES)}")
        if self.batch < 2 or self.lr <= 0 or self.kimg <= 0 or self.latent_weight < 0 or self.perceptual_weight < 0:
            raise ValueError("need batch >= 2, lr > 0, kimg > 0 and latent_weight >= 0")


def train_encoder(opts: EncoderOptions, data: CelebA | None = None) -> Path:
    """Train one encoder; returns the run folder (checkpoint/ holds G, D and E)."""
    device = pick_device(opts.device)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    gan = load_checkpoint(opts.gan, device, parts=("G", "D"))
    conditional = gan.cfg.family == "cgan"
    # the conditional family's encoder reads the frozen pretrained features (models/projected.py)
    cfg = gan.cfg if conditional else replace(gan.cfg, encoder=opts.encoder)
    data = data or opts.load_data(cfg.image_size)
    E = build_any_encoder(cfg)
    labels = torch.from_numpy(data.signed_labels(cfg.conditions)) if conditional else None
    if opts.perceptual_weight and cfg.encoder != "features":
        raise ValueError("--perceptual-weight needs the frozen features: the conditional family's encoder")
    if opts.encoder == "transfer" and not conditional:
        if gan.D is None:
            raise ValueError(f"{opts.gan}: the transfer encoder needs the discriminator's weights (D.*)")
        assert isinstance(E, ConvEncoder) and isinstance(gan.D, Discriminator)  # the unconditional families'
        E.transfer_from(gan.D)
    E = E.to(device).train()
    G = gan.G
    pixel_loss = get_loss(opts.loss)
    optim = torch.optim.Adam(E.parameters(), opts.lr, betas=(0.5, 0.999))
    run = new_run_dir(opts.outdir, f"encoder-{cfg.encoder}-{opts.loss.replace('+', '_')}")
    write_options(run, opts, {"data_summary": data.describe(), "model": asdict(cfg)})
    total = max(1, round(opts.kimg * 1000 / opts.batch))
    images = data.tensor()
    stream = batches(images, data.train_idx, opts.batch, rng)
    val_x = to_model_input(images[torch.from_numpy(data.val_idx[:16])], device)
    history: dict[str, list[float]] = {"pixel": [], "latent": [], **({"labels": []} if conditional else {})}
    bar = tqdm(total=total, desc=f"encoder {run.name}", unit="step")
    t0 = time.perf_counter()
    amp = autocast_for(device, opts.precision)
    for step in range(1, total + 1):
        sel, x_u8 = next(stream)
        x = to_model_input(x_u8, device)
        z = sample_latents(G, x.shape[0]).to(device)
        with amp:
            w = E(x)
            rec = G(w).float()
            loss_pix = pixel_loss(rec, x).mean()
            with torch.no_grad():
                fake = G(z)
            loss_lat = ((E(fake).float() - z) ** 2).mean()
        loss = loss_pix + opts.latent_weight * loss_lat
        if opts.perceptual_weight:
            assert isinstance(E, FeatureEncoder)
            loss_per = perceptual(E.net, rec, x).mean()
            loss = loss + opts.perceptual_weight * loss_per
            history.setdefault("perceptual", []).append(loss_per.item())
        if labels is not None:  # y of a real face: its known labels (+-1), so edits start from the truth
            target = labels[torch.from_numpy(sel)].to(device)
            loss_lab = (((w[:, cfg.nz :].float() - target) ** 2) * (target != 0)).mean()
            loss = loss + loss_lab
            history["labels"].append(loss_lab.item())
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        history["pixel"].append(loss_pix.item())
        history["latent"].append(loss_lat.item())
        bar.update(1)
        bar.set_postfix(
            pixel=f"{loss_pix.item():.4f}",
            latent=f"{loss_lat.item():.4f}",
            img_s=f"{step * opts.batch / (time.perf_counter() - t0):.0f}",
        )
        if step % opts.snapshot_every == 0 or step == total:
            E.eval()
            with torch.no_grad():
                save_grid(torch.cat([val_x, G(E(val_x))]), run / f"reconstructions-{step:06d}.png", nrow=16)
            E.train()
            save_loss_plot(history, list(range(1, step + 1)), run / "loss.png", f"encoder losses ({run.name})")
    bar.close()
    E.eval()
    metrics = reconstruction_metrics(G, E, images, data.val_idx, device)
    meta = {
        **gan.meta,
        "training": {**gan.meta.get("training", {}), "encoder": {"options": jsonable(opts), "steps": total}},
        "metrics": {"encoder_val": metrics},
    }
    plain = build_any_encoder(cfg)
    plain.load_state_dict({k: v.detach().cpu().contiguous() for k, v in E.state_dict().items()})
    save_checkpoint(run / "checkpoint", FaceModel(cfg, G.cpu(), gan.D.cpu() if gan.D else None, plain, meta=meta))
    print(f"val reconstruction: {metrics}")
    return run


@torch.no_grad()
def reconstruction_metrics(
    G: nn.Module, E: nn.Module, images: torch.Tensor, idx: np.ndarray, device: torch.device, batch: int = 256
) -> dict[str, float]:
    """Mean L2, L1 (images in [-1, 1]) and SSIM of G(E(x)) against x over faces idx."""
    sums = {"l2": 0.0, "l1": 0.0, "ssim": 0.0}
    for i in range(0, len(idx), batch):
        x = to_model_input(images[torch.from_numpy(idx[i : i + batch])], device)
        rec = G(E(x))
        sums["l2"] += l2(rec, x).sum().item()
        sums["l1"] += l1(rec, x).sum().item()
        sums["ssim"] += ssim(rec, x).sum().item()
    return {k: v / max(1, len(idx)) for k, v in sums.items()}
