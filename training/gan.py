"""`python -m training gan`: train the DCGAN (G, D) with an EMA copy of G for inference."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from models.checkpoint import FaceModel, load_optimizer_state, optimizer_state, save_checkpoint
from models.networks import Discriminator, Generator, ModelConfig, update_ema
from training.data import CelebA, DataOptions, batches, to_model_input
from training.plots import save_grid, save_loss_plot
from training.runs import autocast_for, new_run_dir, pick_device, write_options

RESUME = "resume.safetensors"
M = TypeVar("M", Generator, Discriminator)


@dataclass(frozen=True, kw_only=True)
class GanOptions(DataOptions):
    outdir: Path = Path("runs")
    image_size: int = 64
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    batch: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    kimg: float = 100.0  # thousands of real images shown to D
    ema_decay: float = 0.999
    snapshot_every: int = 200  # steps between sample grids, plots and checkpoints
    resume: Path | None = None  # a run folder to continue

    def __post_init__(self) -> None:
        if self.batch < 2 or self.lr <= 0 or self.kimg <= 0 or not 0 <= self.ema_decay < 1:
            raise ValueError("need batch >= 2, lr > 0, kimg > 0 and 0 <= ema_decay < 1")
        ModelConfig(nz=self.nz, ngf=self.ngf, ndf=self.ndf, image_size=self.image_size)

    def model_config(self) -> ModelConfig:
        return ModelConfig(nz=self.nz, ngf=self.ngf, ndf=self.ndf, image_size=self.image_size)


def train_gan(opts: GanOptions, data: CelebA | None = None) -> Path:
    """Train G and D; returns the run folder holding checkpoint/, samples and loss.png."""
    device = pick_device(opts.device)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    data = data or opts.load_data(opts.image_size)
    cfg = opts.model_config()
    G = Generator(cfg).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    D = Discriminator(cfg).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    betas = (opts.beta1, 0.999)
    opt_g = torch.optim.Adam(G.parameters(), opts.lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), opts.lr, betas=betas)
    history: dict[str, list[float]] = {"D": [], "G": []}
    step = 0
    if opts.resume:
        run = opts.resume
        step, history = _load_resume(run / RESUME, G, D, G_ema, opt_g, opt_d)
    else:
        run = new_run_dir(opts.outdir, f"gan-{cfg.image_size}px-ngf{cfg.ngf}")
        write_options(run, opts, {"data_summary": data.describe(), "model": asdict(cfg)})
    total = max(1, round(opts.kimg * 1000 / opts.batch))
    fixed_z = torch.randn(64, cfg.nz, generator=torch.Generator().manual_seed(opts.seed)).to(device)
    amp = autocast_for(device, opts.precision)
    images = data.tensor()
    stream = batches(images, data.train_idx, opts.batch, rng)
    bar = tqdm(total=total, initial=step, desc=f"gan {run.name}", unit="step")
    t0, seen = time.perf_counter(), 0
    while step < total:
        _, x_u8 = next(stream)
        loss_d, loss_g = gan_step(G, D, opt_g, opt_d, to_model_input(x_u8, device), amp)
        update_ema(G_ema, G, min(opts.ema_decay, (1 + step) / (10 + step)))
        step += 1
        seen += x_u8.shape[0]
        history["D"].append(loss_d)
        history["G"].append(loss_g)
        bar.update(1)
        bar.set_postfix(
            D=f"{history['D'][-1]:.3f}", G=f"{history['G'][-1]:.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}"
        )
        if step % opts.snapshot_every == 0 or step == total:
            _snapshot(run, step, cfg, G, D, G_ema, opt_g, opt_d, history, fixed_z, data, opts)
    bar.close()
    return run


def gan_step(
    G: Generator,
    D: Discriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    amp: torch.autocast,
) -> tuple[float, float]:
    """One DCGAN step on a batch of real faces (B, 3, S, S); returns (D loss, G loss)."""
    b, device = real.shape[0], real.device
    ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
    with amp:
        fake = G(torch.randn(b, G.cfg.nz, device=device))
        # D: push real logits up, fake down (non-saturating GAN loss, Goodfellow et al. 2014)
        loss_d = F.binary_cross_entropy_with_logits(D(real).float(), ones) + F.binary_cross_entropy_with_logits(
            D(fake.detach()).float(), zeros
        )
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    with amp:
        loss_g = F.binary_cross_entropy_with_logits(D(fake).float(), ones)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


def _snapshot(
    run: Path,
    step: int,
    cfg: ModelConfig,
    G: Generator,
    D: Discriminator,
    G_ema: Generator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    history: dict[str, list[float]],
    fixed_z: torch.Tensor,
    data: CelebA,
    opts: GanOptions,
) -> None:
    with torch.no_grad():
        save_grid(G_ema(fixed_z), run / f"samples-{step:06d}.png", nrow=8)
    save_loss_plot(history, list(range(1, step + 1)), run / "loss.png", f"DCGAN losses ({run.name})")
    meta = {"training": {"stage": "gan", "step": step, "kimg": step * opts.batch / 1000, "data": data.describe()}}
    save_checkpoint(run / "checkpoint", FaceModel(cfg, _plain(G_ema, cfg), _plain(D, cfg), meta=meta))
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (("G", G), ("D", D), ("G_ema", G_ema)):
        tensors.update({f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
    t_g, groups_g = optimizer_state(opt_g, "opt_g")
    t_d, groups_d = optimizer_state(opt_d, "opt_d")
    tensors.update({k: v.cpu().contiguous() for k, v in {**t_g, **t_d}.items()})
    meta_str = {"step": str(step), "history": json.dumps(history), "opt_g": groups_g, "opt_d": groups_d}
    save_file(tensors, str(run / (RESUME + ".tmp")), metadata=meta_str)
    (run / (RESUME + ".tmp")).replace(run / RESUME)


def _plain(module: M, cfg: ModelConfig) -> M:
    """A contiguous-format copy on the CPU, so saved weights do not depend on memory format."""
    out = type(module)(cfg)  # type: ignore[call-arg]
    out.load_state_dict({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
    return out


def _load_resume(
    path: Path,
    G: Generator,
    D: Discriminator,
    G_ema: Generator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
) -> tuple[int, dict[str, list[float]]]:
    device = next(G.parameters()).device
    tensors = load_file(str(path), device=str(device))
    for prefix, module in (("G", G), ("D", D), ("G_ema", G_ema)):
        module.load_state_dict({k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    load_optimizer_state(opt_g, tensors, "opt_g", meta["opt_g"])
    load_optimizer_state(opt_d, tensors, "opt_d", meta["opt_d"])
    return int(meta["step"]), json.loads(meta["history"])
