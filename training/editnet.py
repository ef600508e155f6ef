"""`python -m training editor`: train the image-to-image editor (models/editnet.py).

Each step takes a batch of aligned faces x with their labels y (K attributes) and draws a target
t: each attribute flipped with probability `flips / K`, at least one per face, hair colours kept
exclusive (AttGAN). The editor is asked for two things in one forward pass of 1.25 B rows:

- the edit, x_e = G(x, t - y): the frozen guides (models/guides.py), on a copy augmented and
  resampled so that no pixel-fine texture survives, must see t on every attribute
  (classification, STGAN's difference conditioning), and so must D's own classifier head
  (AttGAN's C, fitted on the real faces' labels and never frozen); the discriminator must find
  it real (non-saturating, DiffAugment, lazy R1), and with `d_patch` so must D's patch head on
  the patches where the edit acted (D is taught that every patch of a face is real and an edit's
  patches are fake as far as its mask covers them); its mask must be small and in one piece (area
  + total variation), and with `regions` it opens only where the flipped attributes may act,
  its area counted as the share of that place it uses (so a pair of glasses pays for covering
  the eyes as much as Male pays for covering the head);
- for a quarter of the faces, the colour it draws for no difference: L1 to x (AttGAN's
  reconstruction; the output itself is x there by construction, models/editnet.py).

The run folder is resumable (`--resume`: weights, EMA, optimisers, step, history, seconds in
`resume.safetensors`); every `snapshot_kimg` it writes a sample sheet (faces, their
reconstruction, an edit of each judged attribute towards the other side of its label, and the
mask of the first), the loss curve, `checkpoint/` (the EMA editor + D, as the service loads it)
and `snapshots/step-NNNNNNN/` (the EMA editor at that point, fp16) for the reach-and-identity
curve (`python -m training editor-curve`). `--minutes` stops on time, after a snapshot.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from models.checkpoint import EditorModel, load_editor, load_optimizer_state, optimizer_state, save_editor
from models.editnet import EDITOR_ATTRIBUTES, HEAD_GEOMETRY, EditNet, EditorConfig, EditorDiscriminator, mask_terms
from models.guides import Guides, load_guides
from training.augment import diff_augment, guide_view
from training.data import CelebA, batches, to_model_input
from training.evaluate import TARGET_ATTRIBUTES
from training.folders import DataOptions
from training.plots import save_grid, save_loss_plot
from training.runs import autocast_for, jsonable, pick_device

RESUME = "resume.safetensors"
M = TypeVar("M", bound=nn.Module)
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
NEUTRAL = ("Eyeglasses",)  # what a new run changes in light alone, by default


@dataclass(frozen=True, kw_only=True)
class EditorOptions(DataOptions):
    guides: Path  # `python -m training guides` folder
    out: Path = Path("runs/editor")  # the run folder itself (resumable), not a parent
    resume: bool = False
    init: Path | None = None  # a new run starts from this editor checkpoint (its G and D), fresh optimisers
    peak_tflops: float | None = None  # the device's peak (bf16) for the share the progress line prints
    attributes: tuple[str, ...] = EDITOR_ATTRIBUTES
    image_size: int = 64
    width: int = 32
    skips: int = 2
    d_width: int = 32
    regions: bool = True  # each attribute acts only in its region of the crop (models/editnet.EDITOR_REGIONS)
    d_patch: bool = True  # D also judges the patches where the edit acted (models/editnet.EditorDiscriminator)
    residual: bool = True  # the edit changes the input's colour rather than drawing a new one (models/editnet)
    cheeks: bool = True  # a smile may act on the cheeks and chin too, not only the mouth (models/editnet)
    neutral: tuple[str, ...] | None = None  # these attributes change light and shade, not hue; None:
    # NEUTRAL (glasses' rims dark, not blue: MODEL_CARD) where the run edits them; "" for none
    batch: int = 32
    lr: float = 2e-4
    decay_kimg: float | None = None  # from here both learning rates fall linearly to 0 at `kimg` (CycleGAN's
    # schedule; AttGAN and STGAN divide theirs by 10 late); None: constant. A function of the images seen,
    # so `--resume` keeps to it
    kimg: float = 1000.0
    minutes: float | None = None  # wall-clock limit of this invocation (a snapshot is written first)
    rec: float = 20.0
    cycle: float = 0.0  # an edit undone (the difference reversed) gives the input back (StarGAN, GANimation),
    # on a quarter of the batch: the edit must keep what makes the face this person
    cls: float = 2.0  # the frozen guides
    cls_d: float = 2.0  # D's classifier head (AttGAN's C); D fits it on real labels with weight 1
    cls_fake: float = 1.0  # D's head also fitted on the edits, with the face's own label for what each
    # was asked to change: it rejects an edit until it looks like a real face with the attribute;
    # 0 for the runs before it (MODEL_CARD)
    margin: float | None = 2.0  # the edit's classification terms are hinges: a changed attribute at this
    # logit, a kept one at 0 (on its side); None: BCE on both, which pulls on what is already seen
    adv: float = 1.0
    adv_patch: float = 1.0  # the patches' realism term, with d_patch
    mask: float = 1.5
    tv: float = 2.0
    r1: float = 1.0  # gamma of the lazy R1 penalty on real faces, every 4 D steps
    flips: float = 1.5  # attributes flipped per edited face, in expectation
    ema_kimg: float = 10.0  # half-life of the EMA editor, in thousands of images
    snapshot_kimg: float = 10.0
    threads: int | None = None
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.batch < 2 or self.kimg <= 0 or self.snapshot_kimg <= 0 or self.flips <= 0:
            raise ValueError("need batch >= 2, kimg > 0, snapshot_kimg > 0, flips > 0")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError("minutes must be > 0")
        if self.decay_kimg is not None and not 0 <= self.decay_kimg < self.kimg:
            raise ValueError("decay_kimg must lie in [0, kimg)")
        self.config()  # validates

    def config(self) -> EditorConfig:
        return EditorConfig(tuple(self.attributes), self.image_size, self.width, skips=self.skips, d_width=self.d_width,
                            regions=self.regions, d_patch=self.d_patch,
                            residual=self.residual, cheeks=self.cheeks, neutral=self.neutral_attributes())  # fmt: skip

    def neutral_attributes(self) -> tuple[str, ...]:
        """`neutral` as given, else NEUTRAL's names this run edits (none without `residual`)."""
        if self.neutral is not None:
            return self.neutral
        return tuple(a for a in NEUTRAL if a in self.attributes) if self.residual else ()


def draw_targets(y: Tensor, known: Tensor, names: tuple[str, ...], flips: float, gen: torch.Generator) -> Tensor:
    """Target attributes t (B, K) in {0, 1}: y with each known attribute flipped with probability
    flips / K, at least one per face that has a known one; a hair colour turned on turns the others off."""
    b, k = y.shape
    flip = (torch.rand(b, k, generator=gen) < flips / k) & known
    none = ~flip.any(1)
    if none.any():  # at least one flip: a random known attribute
        scores = torch.rand(b, k, generator=gen) * known
        flip[none, scores[none].argmax(1)] = True
        flip &= known  # a face with no known label is not edited
    t = torch.where(flip, 1 - y, y)
    hair = [names.index(h) for h in HAIR_COLOURS if h in names]
    for i in hair:
        on = flip[:, i] & (t[:, i] > 0)
        for j in hair:
            if j != i:
                t[on, j] = 0
    return t


def classification_loss(logits: Tensor, target: Tensor, known: Tensor, margin: Tensor | None = None) -> Tensor:
    """BCE of the guides' logits (M, B, K) against t (B, K), or with margins (B, K) the hinge
    max(0, margin - s * logit) for s = +-1: an attribute seen past its margin asks for nothing more.
    Summed over known attributes, averaged over the batch and the ensemble's members."""
    logits, target = logits.float(), target.expand_as(logits)
    if margin is None:
        per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per = F.relu(margin - (2 * target - 1) * logits)
    return (per * known).sum((0, 2)).mean() / logits.shape[0]


def with_new_skips(old: dict[str, Tensor], new: dict[str, Tensor]) -> dict[str, Tensor]:
    """An editor's weights for the same editor with more skip connections, drawing what it drew: a
    layer that gains a skip reads [h, skip, d] where it read [h, d] (models/editnet.py), and the skip
    has h's channels, so its weights are inserted as zeros after h's (function-preserving, as Net2Net
    widens): the run starts from the old editor's edits and learns to use the finer scale."""
    out = {}
    for k, w in old.items():
        target = new[k].shape
        if w.shape != target:
            c = target[1] - w.shape[1]  # the skip's channels, which are h's
            if w.dim() != 4 or w.shape[0] != target[0] or w.shape[1] < c:
                raise ValueError(f"{k}: {tuple(w.shape)} does not grow into {tuple(target)} by a skip")
            w = torch.cat([w[:, :c], w.new_zeros(w.shape[0], c, *w.shape[2:]), w[:, c:]], 1)
        out[k] = w
    return out


def edited_patches(mask: Tensor, grid: int) -> Tensor:
    """(B, grid, grid): how much of each patch the edit's mask (B, 1, S, S) covers, spread by one patch
    each way (DiffAugment's translation moves a face by up to S/8, one patch of an S/8 grid)."""
    cover = F.adaptive_avg_pool2d(mask, grid)
    return F.max_pool2d(cover, 3, 1, 1)[:, 0]


def weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """sum(w * v) / sum(w) over everything (0 where nothing weighs)."""
    return (weights * values).sum() / weights.sum().clamp_min(1e-6)


class EditorTraining:
    """The editor, its EMA copy, D, their optimisers and the frozen guides, on one device."""

    def __init__(self, opts: EditorOptions, device: torch.device) -> None:
        self.opts, self.device = opts, device
        self.cfg = opts.config()
        self.G = EditNet(self.cfg).to(device)
        self.G_ema = EditNet(self.cfg).to(device).eval().requires_grad_(False)
        self.G_ema.load_state_dict(self.G.state_dict())
        self.D = EditorDiscriminator(self.cfg).to(device)
        if opts.channels_last:
            for m in (self.G, self.G_ema, self.D):
                m.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.guides: Guides = load_guides(opts.guides, device)
        missing = [a for a in opts.attributes if a not in self.guides.cfg.attributes]
        if missing:
            raise ValueError(f"the guides in {opts.guides} do not know {missing}")
        self.guide_cols = [self.guides.cfg.attributes.index(a) for a in opts.attributes]
        self.optims = {
            "G": torch.optim.Adam(self.G.parameters(), opts.lr, betas=(0.5, 0.99)),
            "D": torch.optim.Adam(self.D.parameters(), opts.lr, betas=(0.5, 0.99)),
        }
        self.amp = autocast_for(device, opts.precision)
        self.ema_beta = 0.5 ** (opts.batch / (opts.ema_kimg * 1000))
        self.step = 0
        self.images = 0  # faces seen, whatever the batch size of the runs before
        self.spent = {"cpu_seconds": 0.0, "gpu_seconds": 0.0}  # of this run and the runs it started from

    def learning_rate(self) -> float:
        """`lr`, or past `decay_kimg` its linear fall to 0 at `kimg`, for the images seen so far."""
        o = self.opts
        if o.decay_kimg is None:
            return o.lr
        kimg = self.images / 1000
        return o.lr * min(1.0, max(0.0, (o.kimg - kimg) / (o.kimg - o.decay_kimg)))

    def guide_logits(self, x: Tensor) -> Tensor:
        """The guides' logits (M, B, K) of an augmented copy of x (training/augment.py's `guide_view`)."""
        return self.guides(guide_view(x))[..., self.guide_cols]

    def train_step(self, x: Tensor, y: Tensor, t: Tensor, known: Tensor) -> dict[str, float]:
        o, b = self.opts, len(x)
        r = max(1, b // 4)  # the faces that also reconstruct
        lr = self.learning_rate()  # set on every step: a resumed optimiser brings back the lr it saved
        for optim in self.optims.values():
            for group in optim.param_groups:
                group["lr"] = lr
        margin = None if o.margin is None else o.margin * (t != y).float()
        # --- G: the edit satisfies the guides and D with a small mask; no edit draws x back
        self.D.requires_grad_(False)
        with self.amp:
            color, raw = self.G.draw(torch.cat([x, x[:r]]), torch.cat([t - y, torch.zeros_like(y[:r])]))
            place = self.G.gate(t - y)  # |t - y| is 1 somewhere in every row: 1 where the edit may act
            mask = raw[:b] * place.to(raw.dtype)
            edit = x + mask * (color[:b] - x)
            cls = classification_loss(self.guide_logits(edit), t, known, margin)
            realism, classes, patches = self.D.all(diff_augment(edit))
            cls_d = classification_loss(classes[None], t, known, margin)
            adv = F.softplus(-realism.float()).mean()
        rec_l1 = (color[b:].float() - x[:r]).abs().mean()
        cycle = torch.zeros(())
        if o.cycle > 0:
            with self.amp:
                back = self.G.edit(edit[:r], (y - t)[:r])
            cycle = (back.float() - x[:r]).abs().mean()
        area, tv = mask_terms(mask.float())
        area = area / place.float().mean((1, 2, 3))  # the share of its place an edit uses: glasses pay as Male
        loss_g = o.rec * rec_l1 + o.cycle * cycle + o.cls * cls + o.cls_d * cls_d + o.adv * adv
        loss_g = loss_g + o.mask * area.mean() + o.tv * tv.mean()
        where = None
        if patches is not None:
            where = edited_patches(mask.detach().float(), patches.shape[-1])
            adv_patch = weighted_mean(F.softplus(-patches.float()), where)
            loss_g = loss_g + o.adv_patch * adv_patch
        self.optims["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.optims["G"].step()
        self.D.requires_grad_(True)
        # --- D: real faces up, these edits down, the real faces' labels; R1 on the reals every 4th
        # step (lazy, x4)
        lazy = o.r1 > 0 and self.step % 4 == 0
        real = x.detach().requires_grad_(lazy)
        with self.amp:
            d_real, real_classes, p_real = self.D.all(diff_augment(real))
            d_fake, fake_classes, p_fake = self.D.all(diff_augment(edit.detach()))
            cls_real = classification_loss(real_classes[None], y, known)
            loss_d = F.softplus(-d_real.float()).mean() + F.softplus(d_fake.float()).mean() + cls_real
            if o.cls_fake > 0:
                loss_d = loss_d + o.cls_fake * classification_loss(fake_classes[None], y, known * (t != y))
            judged = d_real.float().sum()
            if p_real is not None and p_fake is not None and where is not None:
                # every patch of a face is real; an edit's patches are fake where it acted
                loss_d = loss_d + F.softplus(-p_real.float()).mean() + weighted_mean(F.softplus(p_fake.float()), where)
                judged = judged + p_real.float().mean((1, 2)).sum()
        if lazy:
            (grad,) = torch.autograd.grad(judged, real, create_graph=True)
            loss_d = loss_d + o.r1 / 2 * 4 * grad.square().sum((1, 2, 3)).mean()
        self.optims["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.optims["D"].step()
        with torch.no_grad():
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                pe.lerp_(p, 1 - self.ema_beta)
            for be, bb in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
                be.copy_(bb)
        self.step += 1
        self.images += b
        return {
            "D": loss_d.item(), "G_adv": adv.item(), "cls": cls.item(), "cls_D": cls_d.item(),
            "D_cls_real": cls_real.item(), "rec": rec_l1.item(), "mask": area.mean().item(),
            **({"cycle": cycle.item()} if o.cycle > 0 else {}),
            **({"G_patch": adv_patch.item()} if where is not None else {}),
        }  # fmt: skip

    # --- the run folder --------------------------------------------------------------

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "G_ema": self.G_ema, "D": self.D}

    def save_resume(self, path: Path, history: dict[str, list[float]], seconds: float) -> None:
        tensors: dict[str, Tensor] = {}
        for prefix, module in self.modules().items():
            tensors.update({f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
        groups = {}
        for name, optim in self.optims.items():
            t, groups[f"opt_{name}"] = optimizer_state(optim, f"opt_{name}")
            tensors.update({k: v.cpu().contiguous() for k, v in t.items()})
        meta = {"step": str(self.step), "images": str(self.images), "seconds": str(seconds),
                "spent": json.dumps(self.spent), "history": json.dumps(history), **groups}  # fmt: skip
        save_file(tensors, str(path.with_suffix(".tmp")), metadata=meta)
        path.with_suffix(".tmp").replace(path)

    def load_resume(self, path: Path) -> tuple[dict[str, list[float]], float]:
        tensors = load_file(str(path), device=str(self.device))
        for prefix, module in self.modules().items():
            module.load_state_dict({k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        for name, optim in self.optims.items():
            load_optimizer_state(optim, tensors, f"opt_{name}", meta[f"opt_{name}"])
        self.step = int(meta["step"])
        self.images = int(meta.get("images", self.step * self.opts.batch))
        self.spent = json.loads(meta.get("spent", "{}")) or {"cpu_seconds": float(meta["seconds"]), "gpu_seconds": 0.0}
        return json.loads(meta["history"]), float(meta["seconds"])

    def load_init(self, path: Path) -> str:
        """Start from an editor checkpoint: G and its EMA from its G, D from its D (when it has one);
        the images and compute it cost carry on, the optimisers start fresh. Says what carried over:
        a snapshot (`snapshots/step-N`) holds G alone, and a fresh D costs the run (MODEL_CARD)."""
        model = load_editor(path)
        c = self.cfg  # places and hues are rebuilt from the config, and a missing patch head starts fresh
        if replace(model.cfg, d_patch=c.d_patch, cheeks=c.cheeks, neutral=c.neutral, skips=c.skips) != c or (
            model.cfg.skips > c.skips
        ):
            raise ValueError(f"{path} is an editor of another shape ({model.cfg}) than this run's ({self.cfg})")
        state = with_new_skips(model.G.state_dict(), self.G.state_dict())
        self.G.load_state_dict(state)
        self.G_ema.load_state_dict(state)
        if model.D is not None:  # a D without the patch head gives its trunk; the head starts fresh
            missing, unexpected = self.D.load_state_dict(model.D.state_dict(), strict=False)
            if unexpected or any(not k.startswith("patch.") for k in missing):
                raise ValueError(f"{path}'s discriminator does not fit this run's: {missing + unexpected}")
        t = model.meta.get("training", {})
        self.images = round(float(t.get("kimg", 0.0)) * 1000)
        self.spent = {k: float(t.get(k, 0.0)) for k in self.spent}
        if model.D is None:
            return "the editor only: it holds no discriminator, so D starts fresh (a run's checkpoint/ holds one)"
        return "the editor and its discriminator"

    def count_flops(self, x: Tensor, y: Tensor, t: Tensor, known: Tensor) -> tuple[dict[str, float], float]:
        """One training step (it trains, like any other), and its floating-point operations per image."""
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            losses = self.train_step(x, y, t, known)
        return losses, counter.get_total_flops() / len(x)

    def plain(self, module: M) -> M:
        """A contiguous CPU copy, so saved weights do not depend on memory format or device."""
        out = type(module)(self.cfg)  # type: ignore[call-arg]
        out.load_state_dict({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
        return out.eval()


def sample_sheet(G: EditNet, x: Tensor, y: Tensor, names: tuple[str, ...], shown: tuple[str, ...]) -> Tensor:
    """Rows of faces: the face, what the editor draws for no difference (its reconstruction), each
    `shown` attribute pushed to the other side of its label, and the first edit's mask (white = edited)."""
    cols = [x]
    with torch.no_grad():
        cols.append(G.draw(x, torch.zeros_like(y))[0])
        mask = None
        for a in shown:
            k = names.index(a)
            d = torch.zeros_like(y)
            d[:, k] = 1 - 2 * y[:, k]
            out, m = G(x, d)
            cols.append(out)
            mask = m if mask is None else mask
        if mask is not None:
            cols.append(mask.expand(-1, 3, -1, -1) * 2 - 1)
    return torch.stack(cols, 1).flatten(0, 1)


def train_editor(opts: EditorOptions, data: CelebA | None = None) -> Path:
    device = pick_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    run = Path(opts.out)
    resume = run / RESUME
    if resume.exists() and not opts.resume:
        raise ValueError(f"{run} holds a run already: pass --resume to continue it, or another --out")
    run.mkdir(parents=True, exist_ok=True)
    data = data or opts.load_data(opts.image_size, HEAD_GEOMETRY)
    tr = EditorTraining(opts, device)
    history: dict[str, list[float]] = {}
    seconds = 0.0
    if opts.resume and resume.exists():
        history, seconds = tr.load_resume(resume)
        print(f"resumed {run} at step {tr.step} ({tr.images / 1000:.1f} kimg)")
    elif opts.init is not None:
        carried = tr.load_init(opts.init)
        print(f"started from {opts.init} ({tr.images / 1000:.1f} kimg): {carried}")
    (run / "options.json").write_text(json.dumps(jsonable(opts), indent=2) + "\n")
    names = tuple(opts.attributes)
    signed = torch.from_numpy(data.signed_labels(names))
    labels, known_all = (signed > 0).float(), (signed != 0).float()
    images = data.tensor()
    rng = np.random.default_rng(opts.seed + tr.step)
    gen = torch.Generator().manual_seed(opts.seed + tr.step)
    stream = batches(images, data.train_idx, opts.batch, rng)
    view = torch.from_numpy(data.val_idx[:8])
    val_x, val_y = to_model_input(images[view], device, opts.channels_last), labels[view].to(device)
    shown = tuple(a for a in TARGET_ATTRIBUTES if a in names) or names[:5]
    total, every = round(opts.kimg * 1000), max(1, round(opts.snapshot_kimg * 1000))
    start = last_print = time.monotonic()
    # what the run cost: the process's CPU time on a CPU (its threads' real share of the cores, when
    # other jobs run beside it), the wall time on a GPU
    clock = time.process_time if device.type == "cpu" else time.monotonic
    prev = clock()
    seconds_at_start, images_at_start, flops = seconds, tr.images, 0.0
    per_second = "cpu_seconds" if device.type == "cpu" else "gpu_seconds"
    while tr.images < total:
        idx, x_u8 = next(stream)
        sel = torch.from_numpy(idx)
        y, known = labels[sel], known_all[sel]
        t = draw_targets(y, known.bool(), names, opts.flips, gen)
        x = to_model_input(x_u8, device, opts.channels_last)
        args = (x, y.to(device), t.to(device), known.to(device))
        if not flops:  # the first step of this invocation also counts its work
            losses, flops = tr.count_flops(*args)
            print(f"{flops / 1e9:.2f} GFLOP per training image (batch {opts.batch})", flush=True)
        else:
            losses = tr.train_step(*args)
        for k, v in losses.items():
            history.setdefault(k, []).append(v)
        now, spent = time.monotonic(), clock()
        tr.spent[per_second] += spent - prev
        seconds, prev = seconds_at_start + now - start, spent
        out_of_time = opts.minutes is not None and now - start > opts.minutes * 60
        if now - last_print > 60:
            print(progress(tr, history, (tr.images - images_at_start) / (now - start), flops, opts.peak_tflops),
                  flush=True)  # fmt: skip
            last_print = now
        if tr.images // every != (tr.images - opts.batch) // every or tr.images >= total or out_of_time:
            snapshot(run, tr, history, seconds, data, val_x, val_y, shown)
        if out_of_time:
            break
    return run


def progress(tr: EditorTraining, history: dict[str, list[float]], img_s: float, flops: float, peak: float | None
             ) -> str:  # fmt: skip
    """One progress line: images, throughput (and its share of the device's peak), recent losses."""
    tflops = img_s * flops / 1e12
    share = f", {tflops / peak:.1%} of the {peak:.0f} TFLOP/s peak" if peak else ""
    losses = " ".join(f"{k} {np.mean(v[-50:]):.3f}" for k, v in history.items())
    return f"step {tr.step} kimg {tr.images / 1000:.1f} img_s {img_s:.1f} ({tflops:.2f} TFLOP/s{share}) {losses}"


def snapshot(
    run: Path,
    tr: EditorTraining,
    history: dict[str, list[float]],
    seconds: float,
    data: CelebA,
    val_x: Tensor,
    val_y: Tensor,
    shown: tuple[str, ...],
) -> None:
    opts = tr.opts
    kimg = tr.images / 1000
    names = tuple(opts.attributes)
    sheet = sample_sheet(tr.G_ema, val_x, val_y, names, shown)
    save_grid(sheet, run / f"samples-{tr.step:06d}.png", nrow=3 + len(shown))
    steps = list(range(1, len(next(iter(history.values()))) + 1))
    save_loss_plot(history, steps, run / "loss.png", f"editor losses ({run.name})")
    meta = {
        "training": {
            "stage": "editnet", "step": tr.step, "kimg": kimg, "seconds": seconds, **tr.spent,
            "device": str(tr.device), "data": data.describe(), "options": jsonable(opts),
        },
        "guides": str(opts.guides),
        "default_strength": 1.0,
    }  # fmt: skip
    model = EditorModel(tr.cfg, tr.plain(tr.G_ema), tr.plain(tr.D), meta=meta)
    save_editor(run / "checkpoint", model)
    save_editor(run / "snapshots" / f"step-{tr.step:07d}", EditorModel(tr.cfg, model.G, meta=meta), half=True)
    tr.save_resume(run / RESUME, history, seconds)
    print(f"snapshot at step {tr.step} ({kimg:.1f} kimg, {seconds / 60:.1f} min)", flush=True)
