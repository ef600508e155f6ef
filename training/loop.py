"""Training of every generative family, in one loop with a per-family step:
`python -m training gan --loss {dcgan,wgan-gp}`, `vae`, `vaegan`, `bigan`, `cgan`.

All share the data pipeline, numbered run folders with options.json, sample (and, for the
families with an encoder, reconstruction) grids, loss plots, the EMA copy of G, resume, and
the checkpoint format (G, E when learnt, D when it can judge images; config.json names the
family). The families' losses are `training.families`; snapshots and resume, `training.runs`."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.networks import sample_latents, update_ema
from training.data import CelebA, batches, to_model_input
from training.families import FAMILY_CLASSES
from training.options import TrainOptions
from training.runs import RESUME, autocast_for, load_resume, new_run_dir, pick_device, save_snapshot, write_options


def train_gan(opts: TrainOptions, data: CelebA | None = None) -> Path:
    """Train any family (its options say which); returns the run folder with checkpoint/,
    sample and reconstruction grids, and loss.png. One loop: the family supplies the step."""
    device = pick_device(opts.device)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    data = data or opts.load_data(opts.image_size)
    cfg = opts.model_config()
    fam = FAMILY_CLASSES[cfg.family](cfg, opts, device)
    fam.bind(data)
    G_ema = copy.deepcopy(fam.G).eval().requires_grad_(False)
    history: dict[str, list[float]] = {}
    step, seconds = 0, 0.0
    if opts.resume:
        run = opts.resume
        step, history, seconds = load_resume(run / RESUME, fam, G_ema)
    else:
        run = new_run_dir(opts.outdir, f"{cfg.family}-{cfg.image_size}px-ngf{cfg.ngf}")
        write_options(run, opts, {"data_summary": data.describe(), "model": asdict(cfg)})
    total = max(1, round(opts.kimg * 1000 / opts.batch))
    fixed_z = sample_latents(fam.G, 64, torch.Generator().manual_seed(opts.seed)).to(device)
    val_x = to_model_input(data.tensor()[torch.from_numpy(data.val_idx[:16])], device)
    amp = autocast_for(device, opts.precision)
    stream = batches(data.tensor(), data.train_idx, opts.batch, rng)
    bar = tqdm(total=total, initial=step, desc=f"{cfg.family} {run.name}", unit="step")
    t0, seen = time.perf_counter(), 0
    while step < total:
        sel, x_u8 = next(stream)
        losses = fam.step(to_model_input(x_u8, device), amp, sel)
        update_ema(G_ema, fam.G, min(opts.ema_decay, (1 + step) / (10 + step)))
        step += 1
        seen += x_u8.shape[0]
        for k, v in losses.items():
            history.setdefault(k, []).append(v)
        bar.update(1)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(**{k: f"{v:.3f}" for k, v in losses.items()}, img_s=f"{seen / elapsed:.0f}")
        out_of_time = opts.minutes is not None and elapsed > opts.minutes * 60
        if step % opts.snapshot_every == 0 or step == total or out_of_time:
            save_snapshot(run, step, seconds + elapsed, cfg, fam, G_ema, history, fixed_z, val_x, data, opts)
        if out_of_time:
            break
    bar.close()
    return run
