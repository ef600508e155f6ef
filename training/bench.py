"""`python -m training bench`: training throughput of our GAN step against a reference step.

Reference: the same G and D in fp32, channels-first, fed by decoding each batch's JPEGs
every step (what a torchvision ImageFolder + DataLoader(num_workers=0) pipeline does).
Ours: faces decoded once into the uint8 cache, channels-last, bf16 autocast on CUDA.
Both run in this process on the same data, and the ratio is printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.networks import Discriminator, Generator, ModelConfig
from training.data import IMAGE_DIR, DataOptions, batches, load_face, to_model_input
from training.gan import autocast_for, gan_step
from training.runs import pick_device


@dataclass(frozen=True, kw_only=True)
class BenchOptions(DataOptions):
    ngf: int = 64
    ndf: int = 64
    batch: int = 64
    steps: int = 10
    warmup: int = 2
    max_images: int | None = 2000  # enough faces to sample batches from
    out: Path | None = None  # optional JSON with the figures


def _models(
    cfg: ModelConfig, device: torch.device, channels_last: bool
) -> tuple[Generator, Discriminator, torch.optim.Adam, torch.optim.Adam]:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    G = Generator(cfg).to(device, memory_format=fmt)  # type: ignore[call-overload]
    D = Discriminator(cfg).to(device, memory_format=fmt)  # type: ignore[call-overload]
    return (
        G,
        D,
        torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999)),
        torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999)),
    )


def _timed(step: Callable[[], None], n: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run_bench(opts: BenchOptions) -> dict[str, object]:
    device = pick_device(opts.device)
    cfg = ModelConfig(ngf=opts.ngf, ndf=opts.ndf)
    data = opts.load_data(cfg.image_size)
    files = [data.root / IMAGE_DIR / f for f in data.attributes.files]
    rng = np.random.default_rng(0)

    G, D, og, od = _models(cfg, device, channels_last=False)
    fp32 = torch.autocast(device.type, enabled=False)

    def reference_step() -> None:
        pick = rng.choice(len(files), opts.batch, replace=False)
        x = torch.stack([torch.from_numpy(load_face(files[i], cfg.image_size)).permute(2, 0, 1) for i in pick])
        x = (x.float() / 127.5 - 1).to(device)
        gan_step(G, D, og, od, x, fp32)

    G2, D2, og2, od2 = _models(cfg, device, channels_last=True)
    stream = batches(data.tensor(), data.train_idx, opts.batch, rng)
    amp = autocast_for(device)

    def our_step() -> None:
        gan_step(G2, D2, og2, od2, to_model_input(next(stream)[1], device), amp)

    t_ref = _timed(reference_step, opts.steps, opts.warmup, device)
    t_ours = _timed(our_step, opts.steps, opts.warmup, device)
    n = opts.steps * opts.batch
    result: dict[str, object] = {
        "device": str(torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
        "threads": torch.get_num_threads(),
        "ngf": opts.ngf,
        "batch": opts.batch,
        "reference_img_s": n / t_ref,
        "ours_img_s": n / t_ours,
        "speedup": t_ref / t_ours,
    }
    print(json.dumps(result, indent=2))
    if opts.out:
        Path(opts.out).write_text(json.dumps(result, indent=2) + "\n")
    return result
