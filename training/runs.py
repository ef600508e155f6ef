"""Run folders: numbered, with their resolved options; snapshots (grids, loss plot, checkpoint,
G over time) and the resume file; the device and precision choice."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from models.checkpoint import FaceModel, load_optimizer_state, optimizer_state, save_checkpoint
from models.networks import Generator, ModelConfig
from training.data import CelebA
from training.families import Family
from training.options import TrainOptions
from training.plots import save_grid, save_loss_plot

RESUME = "resume.safetensors"  # every network, G's EMA copy and the optimisers, with step and history
M = TypeVar("M", bound=nn.Module)


def pick_device(name: str) -> torch.device:
    """ "auto" takes CUDA when present; "cuda" without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA GPU is available")
    return torch.device(name)


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); elsewhere it would be emulated."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast_for(device: torch.device, precision: str = "auto") -> torch.autocast:
    """bf16 mixed precision where the hardware runs it natively (CUDA; CPUs with AVX512-BF16 or
    AMX), plain fp32 elsewhere or when asked. bf16 keeps fp32's range: no loss scaling."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    if precision == "fp32" or (precision == "auto" and not native):
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16)


def new_run_dir(outdir: Path, desc: str) -> Path:
    """outdir/00007-desc, numbered one past the highest run already there."""
    outdir.mkdir(parents=True, exist_ok=True)
    nums = [int(m.group(1)) for p in outdir.iterdir() if (m := re.match(r"^(\d+)-", p.name))]
    run = outdir / f"{max(nums, default=-1) + 1:05d}-{desc}"
    run.mkdir()
    return run


def jsonable(options: Any) -> dict[str, Any]:
    """An options dataclass as JSON values: paths (also inside tuples) as strings."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        return [plain(x) for x in v] if isinstance(v, tuple) else v

    return {k: plain(v) for k, v in asdict(options).items()}


def write_options(run: Path, options: Any, extra: dict[str, Any] | None = None) -> None:
    data = jsonable(options)
    (run / "options.json").write_text(json.dumps({**data, **(extra or {})}, indent=2) + "\n")


def save_snapshot(
    run: Path,
    step: int,
    seconds: float,
    cfg: ModelConfig,
    fam: Family,
    G_ema: Generator,
    history: dict[str, list[float]],
    fixed_z: Tensor,
    val_x: Tensor,
    data: CelebA,
    opts: TrainOptions,
) -> None:
    with torch.no_grad():
        save_grid(G_ema(fixed_z), run / f"samples-{step:06d}.png", nrow=8)
        if fam.E is not None:
            fam.E.eval()
            save_grid(torch.cat([val_x, G_ema(fam.E(val_x))]), run / f"reconstructions-{step:06d}.png", nrow=16)
            fam.E.train()
    save_loss_plot(history, list(range(1, step + 1)), run / "loss.png", f"{cfg.family} losses ({run.name})")
    kimg = step * opts.batch / 1000
    meta = {
        "training": {
            "stage": cfg.family,
            "step": step,
            "kimg": kimg,
            "seconds": seconds,
            "seconds_per_kimg": seconds / kimg,
            "data": data.describe(),
        }
    }
    D = _plain(fam.D, cfg) if fam.D is not None else None
    E = _plain(fam.E, cfg) if fam.E is not None else None
    save_checkpoint(run / "checkpoint", FaceModel(cfg, _plain(G_ema, cfg), D, E, meta=meta))
    # G at this point of training, for the quality-over-CPU-time curve of `python -m training bench`
    (run / "snapshots").mkdir(exist_ok=True)
    g_state = {k: v.detach().cpu().contiguous() for k, v in G_ema.state_dict().items()}
    cpu_s = seconds * (torch.get_num_threads() if next(G_ema.parameters()).device.type == "cpu" else 1)
    save_file(g_state, str(run / "snapshots" / f"G-{step:06d}.safetensors"),
              metadata={"seconds": str(seconds), "cpu_seconds": str(cpu_s), "kimg": str(kimg)})  # fmt: skip
    tensors: dict[str, Tensor] = {}
    for prefix, module in {**fam.modules(), "G_ema": G_ema}.items():
        tensors.update({f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
    groups = {}
    for name, optim in fam.optims.items():
        t, groups[f"opt_{name}"] = optimizer_state(optim, f"opt_{name}")
        tensors.update({k: v.cpu().contiguous() for k, v in t.items()})
    meta_str = {"step": str(step), "seconds": str(seconds), "history": json.dumps(history), **groups}
    save_file(tensors, str(run / (RESUME + ".tmp")), metadata=meta_str)
    (run / (RESUME + ".tmp")).replace(run / RESUME)


def _plain(module: M, cfg: ModelConfig) -> M:
    """A contiguous-format copy on the CPU, so saved weights do not depend on memory format."""
    out = type(module)(cfg)  # type: ignore[call-arg]
    out.load_state_dict({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
    return out


def load_resume(path: Path, fam: Family, G_ema: Generator) -> tuple[int, dict[str, list[float]], float]:
    device = next(fam.G.parameters()).device
    tensors = load_file(str(path), device=str(device))
    # A network (and its optimiser) the file has none of is a term added on resume: it starts fresh.
    for prefix, module in {**fam.modules(), "G_ema": G_ema}.items():
        state = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        if state:
            module.load_state_dict(state)
        else:
            print(f"resume: {path} has no {prefix}; it starts fresh", file=sys.stderr)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    for name, optim in fam.optims.items():
        if f"opt_{name}" in meta:
            load_optimizer_state(optim, tensors, f"opt_{name}", meta[f"opt_{name}"])
    return int(meta["step"]), json.loads(meta["history"]), float(meta.get("seconds", 0.0))
