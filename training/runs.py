"""Numbered run folders with their resolved options, and the device choice."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch


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
