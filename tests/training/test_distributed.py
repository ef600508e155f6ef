"""`torchrun --nproc_per_node=2 -m training ...` on CPU (gloo): one run, written once, that loads
like a one-process run's and resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from app.serve import free_port
from models import load_checkpoint
from tests.training.test_cli import TINY
from training.__main__ import main
from training.distributed import average_gradients, join, leave, same_start

ROOT = Path(__file__).resolve().parents[2]


def _torchrun(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*cmd, "-m", "training", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_train_one_run_that_loads_and_resumes(tmp_path: Path, celeba_half: Path) -> None:
    common = ["gan", "--data", str(celeba_half), "--cache-dir", str(tmp_path / "cache"), *TINY, "--snapshot-every", "2"]
    _torchrun([*common, "--kimg", "0.032", "--outdir", str(tmp_path / "ddp")])
    assert main([*common, "--kimg", "0.032", "--outdir", str(tmp_path / "one")]) == 0
    (ddp,), (one,) = (list((tmp_path / d).iterdir()) for d in ("ddp", "one"))  # rank 0 alone made a folder

    a, b = load_checkpoint(ddp / "checkpoint"), load_checkpoint(one / "checkpoint")
    assert a.cfg == b.cfg
    for part in ("G", "D"):
        shapes = {k: v.shape for k, v in getattr(a, part).state_dict().items()}
        assert shapes == {k: v.shape for k, v in getattr(b, part).state_dict().items()}
    ddp_opts, one_opts = (json.loads((r / "options.json").read_text()) for r in (ddp, one))
    assert (ddp_opts.pop("processes"), one_opts.pop("processes")) == (2, 1)
    assert {k: v for k, v in ddp_opts.items() if k != "outdir"} == {k: v for k, v in one_opts.items() if k != "outdir"}
    # 32 images in batches of 8 from each of 2 processes: 2 steps, not the one process's 4
    assert a.meta["training"]["step"] == 2 and b.meta["training"]["step"] == 4

    _torchrun([*common, "--kimg", "0.064", "--outdir", str(tmp_path / "ddp"), "--resume", str(ddp)])
    assert load_checkpoint(ddp / "checkpoint").meta["training"]["step"] == 4
    assert len(list((tmp_path / "ddp").iterdir())) == 1


def _step_on_own_data(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank))
    torch.manual_seed(rank)  # different starting weights on each process
    world, _ = join("cpu")
    net = torch.nn.Linear(3, 2)
    same_start(world, [net])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    average_gradients(world, opt)
    net(torch.full((4, 3), float(rank + 1))).sum().backward()  # different data, different gradients
    opt.step()
    torch.save(net.state_dict(), f"{out}/rank{rank}.pt")
    leave(world)


def test_processes_start_from_rank_0_and_step_with_the_averaged_gradient(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_step_on_own_data, args=(free_port(), str(tmp_path)), nprocs=2)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(0)
    start = torch.nn.Linear(3, 2).state_dict()
    # the mean gradient of the weight over inputs of 1s and 2s (4 rows each): 4 * 1.5 per entry
    assert torch.allclose(a["weight"], start["weight"] - 0.1 * 6.0)
