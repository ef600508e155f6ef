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


def new_run_dir(outdir: Path, desc: str) -> Path:
    """outdir/00007-desc, numbered one past the highest run already there."""
    outdir.mkdir(parents=True, exist_ok=True)
    nums = [int(m.group(1)) for p in outdir.iterdir() if (m := re.match(r"^(\d+)-", p.name))]
    run = outdir / f"{max(nums, default=-1) + 1:05d}-{desc}"
    run.mkdir()
    return run


def write_options(run: Path, options: Any, extra: dict[str, Any] | None = None) -> None:
    data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()}
    (run / "options.json").write_text(json.dumps({**data, **(extra or {})}, indent=2) + "\n")
