"""`python -m training bench`: training throughput of our GAN step against a reference step.

Reference: the same G and D in fp32, channels-first, fed by decoding each batch's JPEGs
every step (what a torchvision ImageFolder + DataLoader(num_workers=0) pipeline does).
Ours: faces decoded once into the uint8 cache, channels-last, in fp32 and in bf16 autocast
(where the hardware runs bf16 natively). All run in this process on the same data; each
step's achieved GFLOP/s (FLOPs counted by torch) is set against the machine's own matmul
rate in the same precision, measured in the same run.
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
from models.pixels import from_uint8
from training.data import IMAGE_DIR, batches, load_face, to_model_input
from training.families import CGAN, gan_step
from training.folders import DataOptions
from training.options import CganOptions
from training.runs import autocast_for, cpu_has_bf16, pick_device


@dataclass(frozen=True, kw_only=True)
class BenchOptions(DataOptions):
    ngf: int = 64
    ndf: int = 64
    batch: int = 64
    steps: int = 10
    warmup: int = 2
    max_images: int | None = 2000  # enough faces to sample batches from
    out: Path | None = None  # optional JSON with the figures
    feature_size: int = 64  # the cgan step's projected D input side


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


def _timed(step: Callable[[], object], n: int, warmup: int, device: torch.device) -> float:
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


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """The machine's practical matrix-multiply rate in this dtype: FLOP/s of an n x n matmul."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    seconds = _timed(lambda: torch.mm(a, b), reps, 2, device)
    return 2 * n**3 * reps / seconds


def step_flops(G: Generator, D: Discriminator, og: torch.optim.Adam, od: torch.optim.Adam, x: torch.Tensor) -> int:
    """FLOPs of one GAN step (forward and backward of G and D), counted by torch, not estimated."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        gan_step(G, D, og, od, x, torch.autocast(x.device.type, enabled=False))
    return int(counter.get_total_flops())


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
        x = from_uint8(torch.stack([torch.from_numpy(load_face(files[i], cfg.image_size)) for i in pick])).to(device)
        gan_step(G, D, og, od, x, fp32)

    stream = batches(data.tensor(), data.train_idx, opts.batch, rng)

    def ours(precision: str) -> Callable[[], object]:
        G2, D2, og2, od2 = _models(cfg, device, channels_last=True)
        amp = autocast_for(device, precision)
        return lambda: gan_step(G2, D2, og2, od2, to_model_input(next(stream)[1], device), amp)

    flops = step_flops(*_models(cfg, device, channels_last=True), to_model_input(next(stream)[1], device))
    n = opts.steps * opts.batch
    steps = {
        "reference (fp32, JPEG decode per step)": _timed(reference_step, opts.steps, opts.warmup, device),
        "ours fp32": _timed(ours("fp32"), opts.steps, opts.warmup, device),
    }
    bf16 = device.type == "cuda" or cpu_has_bf16()
    if bf16:
        steps["ours bf16"] = _timed(ours("bf16"), opts.steps, opts.warmup, device)
    # the conditional family's step: G(z, y) against its D, with and without the frozen-feature heads
    fp32 = torch.autocast(device.type, enabled=False)
    for weight, label in (
        (0.0, "cgan fp32 (conv D)"),
        (0.1, f"cgan fp32 (+ projected heads at {opts.feature_size} px)"),
    ):
        copts = CganOptions(
            data=opts.data, ngf=opts.ngf, ndf=opts.ndf, batch=opts.batch,
            feature_size=opts.feature_size, projected_weight=weight,
        )  # fmt: skip
        cgan = CGAN(copts.model_config(), copts, device)
        cgan.bind(data)

        def cgan_step(cgan: CGAN = cgan) -> None:
            sel, x = next(stream)
            cgan.step(to_model_input(x, device), fp32, sel)

        steps[label] = _timed(cgan_step, opts.steps, opts.warmup, device)
    peak = {"fp32": matmul_rate(device, torch.float32)}
    if bf16:
        peak["bf16"] = matmul_rate(device, torch.bfloat16)
    t_ref = steps["reference (fp32, JPEG decode per step)"]
    rows = {
        name: {
            "img_s": n / t,
            "speedup": t_ref / t,
            # FLOPs are counted for the DCGAN step; the cgan step is another computation
            "gflop_s": flops * opts.steps / t / 1e9 if not name.startswith("cgan") else float("nan"),
            "share_of_matmul_limit": flops * opts.steps / t / peak["bf16" if "bf16" in name else "fp32"]
            if not name.startswith("cgan")
            else float("nan"),
        }
        for name, t in steps.items()
    }
    result: dict[str, object] = {
        "device": str(torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
        "threads": torch.get_num_threads(),
        "ngf": opts.ngf,
        "batch": opts.batch,
        "step_gflop": flops / 1e9,
        "matmul_gflop_s": {k: v / 1e9 for k, v in peak.items()},
        "steps": rows,
    }
    print(
        f"{result['device']}, {result['threads']} threads, ngf {opts.ngf}, batch {opts.batch}: "
        f"{flops / 1e9:.1f} GFLOP per step"
    )
    print("matmul limit (2048^2): " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peak.items()))
    print(f"{'step':42s} {'img/s':>8s} {'x ref':>6s} {'GFLOP/s':>8s} {'of limit':>8s}")
    for name, r in rows.items():
        counted = r["gflop_s"] == r["gflop_s"]  # not NaN: FLOPs counted for this step
        flops_s = f"{r['gflop_s']:8.1f} {r['share_of_matmul_limit']:8.0%}" if counted else f"{'-':>8s} {'-':>8s}"
        print(f"{name:42s} {r['img_s']:8.1f} {r['speedup']:6.2f} {flops_s}")
    if not bf16:
        print("bf16: not measured, this CPU has no native bf16 (AVX512-BF16 or AMX)")
    if opts.out:
        Path(opts.out).write_text(json.dumps(result, indent=2) + "\n")
    return result
