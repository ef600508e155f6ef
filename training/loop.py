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
from training.distributed import average_gradients, join, leave, same_start, share
from training.families import FAMILY_CLASSES
from training.options import TrainOptions
from training.runs import RESUME, autocast_for, load_resume, new_run_dir, save_snapshot, write_options


def train_gan(opts: TrainOptions, data: CelebA | None = None) -> Path:
    """Train any family (its options say which); returns the run folder with checkpoint/,
    sample and reconstruction grids, and loss.png. One loop: the family supplies the step.
    Under torchrun, every process runs it on its shard (`training.distributed`)."""
    world, device = join(opts.device)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed + world.rank)  # each process its own order and flips
    data = data or opts.load_data(opts.image_size)
    cfg = opts.model_config()
    fam = FAMILY_CLASSES[cfg.family](cfg, opts, device)
    fam.bind(data)
    same_start(world, fam.modules().values())
    for optim in fam.optims.values():
        average_gradients(world, optim)
    G_ema = copy.deepcopy(fam.G).eval().requires_grad_(False)
    history: dict[str, list[float]] = {}
    step, seconds = 0, 0.0
    if opts.resume:
        run: Path = opts.resume
        step, history, seconds = load_resume(run / RESUME, fam, G_ema)
    else:
        made = None
        if world.main:
            made = new_run_dir(opts.outdir, f"{cfg.family}-{cfg.image_size}px-ngf{cfg.ngf}")
            extra = {"data_summary": data.describe(), "model": asdict(cfg), "processes": world.size}
            write_options(made, opts, extra)
        run = share(world, made)
    total = max(1, round(opts.kimg * 1000 / (opts.batch * world.size)))
    fixed_z = sample_latents(fam.G, 64, torch.Generator().manual_seed(opts.seed)).to(device)
    val_x = to_model_input(data.tensor()[torch.from_numpy(data.val_idx[:16])], device)
    amp = autocast_for(device, opts.precision)
    stream = batches(data.tensor(), data.train_idx[world.rank :: world.size], opts.batch, rng)
    bar = tqdm(total=total, initial=step, desc=f"{cfg.family} {run.name}", unit="step", disable=not world.main)
    t0, seen = time.perf_counter(), 0
    while step < total:
        sel, x_u8 = next(stream)
        losses = fam.step(to_model_input(x_u8, device), amp, sel)
        update_ema(G_ema, fam.G, min(opts.ema_decay, (1 + step) / (10 + step)))
        step += 1
        seen += x_u8.shape[0] * world.size
        for k, v in losses.items():
            history.setdefault(k, []).append(v)
        bar.update(1)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(**{k: f"{v:.3f}" for k, v in losses.items()}, img_s=f"{seen / elapsed:.0f}")
        out_of_time = opts.minutes is not None and share(world, elapsed > opts.minutes * 60)  # all stop together
        if world.main and (step % opts.snapshot_every == 0 or step == total or out_of_time):
            save_snapshot(run, step, seconds + elapsed, cfg, fam, G_ema, history, fixed_z, val_x, data, opts)
        if out_of_time:
            break
    bar.close()
    leave(world)
    return run
