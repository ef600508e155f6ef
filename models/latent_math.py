"""The pure tensor math of the latent space: interpolation, orthogonalisation, and optimising a
latent towards a target (the optimised edit, the inversion's refinement).

No I/O here: the service and the evaluation both call these functions on tensors. What an edit
is (a direction, its calibration, the summed offset) is `models.edits`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.losses import l1, l2

ProgressFn = Callable[[int, int, float], None]  # (step, total steps, mean objective)


def orthogonalize(v: Tensor, keep: Tensor) -> Tensor:
    """v (nz,) minus its projection on span(keep rows) (K, nz): an edit along v that leaves the
    kept attributes' directions where they are (InterFaceGAN's conditional edit)."""
    if len(keep) == 0:
        return v.clone()
    basis = torch.linalg.qr(keep.T.double()).Q  # (nz, K), orthonormal
    w = v.double()
    return (w - basis @ (basis.T @ w)).to(v.dtype)


def lerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """Linear interpolation: (nz,), (nz,), (T,) -> (T, nz)."""
    t = t.to(z0.dtype)[:, None]
    return (1 - t) * z0 + t * z1


def slerp(z0: Tensor, z1: Tensor, t: Tensor, eps: float = 1e-6) -> Tensor:
    """Spherical interpolation (Shoemake 1985), which keeps Gaussian latents at a typical norm.

    Falls back to lerp where z0 and z1 are (anti)parallel and the great circle is undefined.
    """
    cos = torch.dot(z0 / z0.norm(), z1 / z1.norm()).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < eps or (torch.pi - omega).abs() < eps:
        return lerp(z0, z1, t)
    t = t.to(z0.dtype)[:, None]
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * z0 + (torch.sin(t * omega) / so) * z1


@dataclass(frozen=True)
class OptimizeOptions:
    """Options of the optimised edit (Zhu et al. 2016); bounds are checked by the callers."""

    steps: int = 100
    lr: float = 0.05
    lambda1: float = 0.01  # weight of ||z - z0||^2 (stay near the start)
    lambda2: float = 0.01  # weight of the discriminator's realism logit
    loss: str = "l2"  # pixel loss U: "l2" or "l1"


def objective(
    G: nn.Module,
    D: nn.Module | None,
    z: Tensor,
    z0: Tensor,
    target: Tensor,
    opts: OptimizeOptions,
    mask: Tensor | None = None,
) -> Tensor:
    """Per-sample U(G(z), target) + lambda1 ||z - z0||^2 - lambda2 D(G(z)); shape (B,).

    D None (a family without an image discriminator): no realism term."""
    img = G(z)
    pixel = (l1 if opts.loss == "l1" else l2)(img, target, mask)
    prior = ((z - z0) ** 2).mean(1)  # mean over nz so lambda1 does not depend on latent size
    realism = torch.zeros_like(pixel)
    if D is not None and opts.lambda2:
        cfg = getattr(G, "cfg", None)
        # a conditional D judges the image as a face with the labels y that the latent asks for
        realism = D(img, z[:, cfg.nz :]) if cfg is not None and cfg.conditions else D(img)
    return pixel + opts.lambda1 * prior - opts.lambda2 * realism


def optimize_latent(
    G: nn.Module,
    D: nn.Module | None,
    z0: Tensor,
    target: Tensor,
    opts: OptimizeOptions = OptimizeOptions(),
    mask: Tensor | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Tensor, list[float]]:
    """z* = argmin_z U(G(z), target) + lambda1 ||z - z0||^2 - lambda2 D(G(z)), from z = z0.

    z0: (B, nz), usually E(x) or an attribute edit of it; target: (B, nc, S, S) in [-1, 1];
    mask: optional (B or 1, 1, S, S) pixel weights for U. G and D stay frozen (eval mode,
    no parameter gradients). Returns z* (B, nz) and the mean objective before each step
    and after the last (steps + 1 values).
    """
    z0 = z0.detach()
    z = z0.clone().requires_grad_(True)
    optim = torch.optim.Adam([z], lr=opts.lr)
    history: list[float] = []
    with _frozen(G), _frozen(D if D is not None else nn.Identity()):
        for step in range(opts.steps):
            loss = objective(G, D, z, z0, target, opts, mask).sum()
            history.append(loss.item() / z.shape[0])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            if progress is not None:
                progress(step + 1, opts.steps, history[-1])
        with torch.no_grad():
            history.append(objective(G, D, z, z0, target, opts, mask).mean().item())
    return z.detach(), history


@dataclass(frozen=True)
class RefineStats:
    """How a refinement went: optimiser steps done, wall time, pixel L2 (images in [-1, 1])
    of G(E(x)) before the first step and of G(z*) after the last."""

    steps: int
    seconds: float
    l2_start: float
    l2: float


@dataclass(frozen=True)
class RefineOptions:
    """The inversion refinement: how far to optimise E(x) towards the photo, and how long."""

    steps: int = 60
    lr: float = 0.05
    lambda_enc: float = 0.01  # weight of ||z - E(x)||^2 (per latent unit): stay in the encoder's domain
    budget_s: float | None = None  # wall-time cap; None = steps alone
    patience: int = 8  # stop when the loss has not improved by `tol` (relative) for this many steps
    tol: float = 2e-3


def refine_latent(
    G: nn.Module,
    target: Tensor,
    z_enc: Tensor,
    mask: Tensor | None = None,
    opts: RefineOptions = RefineOptions(),
    step_lock: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
) -> tuple[Tensor, RefineStats]:
    """z* = argmin_z ||G(z) - x||^2 (under `mask`) + lambda_enc ||z - E(x)||^2, from z = E(x).

    The encoder's answer as both start and regulariser (In-Domain GAN Inversion, Zhu et al.
    2020) keeps z where G and the attribute directions were learnt, while the pixel term pulls
    G(z) onto this particular face. target: (B, nc, S, S) in [-1, 1]; mask: (B or 1, 1, S, S)
    pixel weights (0 where the crop is padding); z_enc: (B, nz). `step_lock` is taken around
    each step, so other forward passes interleave. Returns z* and how the run went.
    """
    start = time.monotonic()
    z_enc = z_enc.detach()
    z = z_enc.clone().requires_grad_(True)
    optim = torch.optim.Adam([z], lr=opts.lr)
    best, since, first, step = float("inf"), 0, float("nan"), 0
    with _frozen(G):
        for step in range(1, opts.steps + 1):  # noqa: B007 - `step` is reported after the loop
            with step_lock():
                pixel = l2(G(z), target, mask)
                loss = (pixel + opts.lambda_enc * ((z - z_enc) ** 2).mean(1)).sum()
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
            value = loss.item()
            if step == 1:
                first = pixel.mean().item()
            if value < best * (1 - opts.tol):
                best, since = value, 0
            else:
                since += 1
            if since >= opts.patience or (opts.budget_s is not None and time.monotonic() - start > opts.budget_s):
                break
        with torch.no_grad(), step_lock():
            last = l2(G(z), target, mask).mean().item()
    return z.detach(), RefineStats(step, time.monotonic() - start, first, last)


class _frozen:
    """Context: module in eval mode with gradients off for its parameters; restored after."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.training = self.module.training
        self.flags = [p.requires_grad for p in self.module.parameters()]
        self.module.eval().requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.training)
        for p, flag in zip(self.module.parameters(), self.flags, strict=True):
            p.requires_grad_(flag)
