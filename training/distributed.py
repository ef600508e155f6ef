"""Training on many devices: `torchrun --nproc_per_node=N -m training <family> ...`.

Every process trains on its own shard of the faces with the same networks: the weights start
identical (rank 0's, broadcast), and before every optimiser step the gradients are averaged
over all processes, the all-reduce DistributedDataParallel performs, done at the optimiser so
that every family's step (several networks, and their methods besides `forward`, such as the
conditional D's `judge`) runs unchanged. The networks therefore stay identical everywhere and
one EMA of G follows them. Rank 0 writes samples, checkpoints and the resume file; every rank
reads the resume file. NCCL on GPUs, gloo on CPUs. `--batch` is per process, `--kimg` counts
the images of all processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from training.runs import pick_device


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def join(device_name: str) -> tuple[World, torch.device]:
    """This process's place among those torchrun started (alone without torchrun), and its device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), pick_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank, size), device


def leave(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.barrier()  # rank 0 has written its last snapshot before anyone exits
        dist.destroy_process_group()


def same_start(world: World, modules: Iterable[nn.Module]) -> None:
    """Every process starts from rank 0's weights and buffers."""
    if world.size == 1:
        return
    for m in modules:
        for t in m.state_dict().values():
            dist.broadcast(t, src=0)


def average_gradients(world: World, optimizer: torch.optim.Optimizer) -> None:
    """Before each step of `optimizer`, its parameters' gradients are averaged over all processes."""
    if world.size == 1:
        return

    def hook(opt: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # one all-reduce per step, not one per tensor
        dist.all_reduce(flat)
        flat /= world.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    optimizer.register_step_pre_hook(hook)


def share(world: World, value: Any) -> Any:
    """Rank 0's value, on every process (a run folder, a decision to stop)."""
    if world.size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
