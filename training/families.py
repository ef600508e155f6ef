"""The generative families' losses and steps: DCGAN, WGAN-GP, VAE, VAE-GAN, BiGAN and the
attribute-conditional GAN. Each `Family` owns its networks and optimisers and does one training
step on a batch; `training.loop` runs any of them (as stylegan2-ada keeps `loss.py` apart from
`training_loop.py`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.checkpoint import load_checkpoint
from models.features import ATTRIBUTE_FEATURES, attribute_features, load_features
from models.networks import (
    ConvEncoder,
    Discriminator,
    Generator,
    JointDiscriminator,
    ModelConfig,
)
from models.projected import CondGenerator, ProjectedDiscriminator, warm_start
from training.augment import diff_augment
from training.data import CelebA
from training.options import CganOptions, GanOptions, TrainOptions, VaeGanOptions, VaeOptions


def _adam(module: nn.Module, opts: TrainOptions, beta2: float = 0.999) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), opts.lr, betas=(opts.beta1, beta2))


class Family:
    """One generative family: its networks and optimisers, and one training step.

    `G` is the generator (the VAE's decoder); `E` the encoder, when the family learns one;
    `D` a discriminator whose score can serve the optimised edit's realism term, when it has one.
    """

    def __init__(self, cfg: ModelConfig, opts: TrainOptions, device: torch.device) -> None:
        self.cfg, self.opts = cfg, opts
        fmt = torch.channels_last
        self.G: Generator = Generator(cfg).to(device, memory_format=fmt)  # type: ignore[call-overload]
        self.D: Discriminator | None = None
        self.E: ConvEncoder | None = None
        self.extra: dict[str, nn.Module] = {}  # other networks, kept in the resume file only
        self.optims: dict[str, torch.optim.Optimizer] = {"G": _adam(self.G, opts)}

    def modules(self) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {"G": self.G, **self.extra}
        if self.D is not None:
            out["D"] = self.D
        if self.E is not None:
            out["E"] = self.E
        return out

    def bind(self, data: CelebA) -> None:
        """Take what the family needs of the data besides the images (labels, masks)."""

    def step(self, real: Tensor, amp: torch.autocast, idx: np.ndarray | None = None) -> dict[str, float]:
        """One training step on a batch of real faces (B, 3, S, S); idx: their rows in the data."""
        raise NotImplementedError


class GAN(Family):
    """DCGAN (non-saturating loss) or WGAN-GP (Gulrajani et al. 2017); D is the critic."""

    def __init__(self, cfg: ModelConfig, opts: TrainOptions, device: torch.device) -> None:
        super().__init__(cfg, opts, device)
        self.D = Discriminator(cfg).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        beta2 = 0.9 if cfg.family == "wgan-gp" else 0.999
        self.optims = {"G": _adam(self.G, opts, beta2), "D": _adam(self.D, opts, beta2)}

    def step(self, real: Tensor, amp: torch.autocast, idx: np.ndarray | None = None) -> dict[str, float]:
        assert self.D is not None
        if self.cfg.family == "dcgan":
            d, g = gan_step(self.G, self.D, self.optims["G"], self.optims["D"], real, amp)
            return {"D": d, "G": g}
        assert isinstance(self.opts, GanOptions)
        b = real.shape[0]
        with amp:
            fake = self.G(torch.randn(b, self.cfg.nz, device=real.device))
            critic = self.D(fake.detach()).float().mean() - self.D(real).float().mean()
        penalty = _gradient_penalty(self.D, real, fake.detach().float())
        loss_d = critic + self.opts.gp_weight * penalty
        self.optims["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.optims["D"].step()
        with amp:
            loss_g = -self.D(fake).float().mean()
        self.optims["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.optims["G"].step()
        return {"D": loss_d.item(), "G": loss_g.item(), "W": -critic.item()}


def _gradient_penalty(D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """(||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake images (fp32)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    x_hat = (eps * real.float() + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per sample, summed over latent dimensions."""
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)


class VAE(Family):
    """Kingma & Welling 2014: E(x) = (mu, log sigma^2), z = mu + sigma * eps, x' = G(z)."""

    def __init__(self, cfg: ModelConfig, opts: TrainOptions, device: torch.device) -> None:
        super().__init__(cfg, opts, device)
        self.E = ConvEncoder(cfg).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.optims["E"] = _adam(self.E, opts)

    def encode(self, real: Tensor) -> tuple[Tensor, Tensor]:
        assert self.E is not None
        mu, logvar = self.E.distribution(real)
        return mu.float(), logvar.float()

    def step(self, real: Tensor, amp: torch.autocast, idx: np.ndarray | None = None) -> dict[str, float]:
        assert isinstance(self.opts, VaeOptions)
        pixels = real[0].numel()
        with amp:
            mu, logvar = self.encode(real)
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            recon = ((self.G(z).float() - real) ** 2).flatten(1).mean(1)
        kl = _kl(mu, logvar) / pixels  # per pixel, like the reconstruction: the ELBO up to scale
        loss = (recon + self.opts.kl_weight * kl).mean()
        for o in self.optims.values():
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in self.optims.values():
            o.step()
        return {"reconstruction": recon.mean().item(), "KL": kl.mean().item()}


class VAEGAN(VAE):
    """Larsen et al. 2016: the VAE's decoder is the GAN's generator, and reconstruction is
    measured in the discriminator's feature space (its conv trunk)."""

    def __init__(self, cfg: ModelConfig, opts: TrainOptions, device: torch.device) -> None:
        super().__init__(cfg, opts, device)
        self.D = Discriminator(cfg).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.optims["D"] = _adam(self.D, opts)

    def step(self, real: Tensor, amp: torch.autocast, idx: np.ndarray | None = None) -> dict[str, float]:
        assert isinstance(self.opts, VaeGanOptions) and self.D is not None and self.E is not None
        b, device = real.shape[0], real.device
        ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
        bce = F.binary_cross_entropy_with_logits
        with amp:
            mu, logvar = self.encode(real)
            x_rec = self.G(mu + (0.5 * logvar).exp() * torch.randn_like(mu))
            x_prior = self.G(torch.randn(b, self.cfg.nz, device=device))
            loss_d = bce(self.D(real).float(), ones) + 0.5 * (
                bce(self.D(x_rec.detach()).float(), zeros) + bce(self.D(x_prior.detach()).float(), zeros)
            )
        self.optims["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.optims["D"].step()
        self.D.requires_grad_(False)
        with amp:
            feature = (
                ((self.D.trunk(x_rec).float() - self.D.trunk(real).float().detach()) ** 2).flatten(1).mean(1).mean()
            )
            fool = 0.5 * (bce(self.D(x_rec).float(), ones) + bce(self.D(x_prior).float(), ones))
        kl = _kl(mu, logvar).mean() / real[0].numel()
        self.D.requires_grad_(True)
        for name in ("E", "G"):
            self.optims[name].zero_grad(set_to_none=True)
        e_params, g_params = list(self.E.parameters()), list(self.G.parameters())
        (self.opts.kl_weight * kl + feature).backward(inputs=e_params, retain_graph=True)
        (self.opts.gamma * feature + fool).backward(inputs=g_params)
        self.optims["E"].step()
        self.optims["G"].step()
        return {"D": loss_d.item(), "G": fool.item(), "feature": feature.item(), "KL": kl.item()}


class BiGAN(Family):
    """BiGAN / ALI (Donahue et al., Dumoulin et al. 2017): E and G against a discriminator on
    (x, E(x)) and (G(z), z) pairs. Its discriminator judges pairs, so it is no realism term
    for images alone: the checkpoint has no D."""

    def __init__(self, cfg: ModelConfig, opts: TrainOptions, device: torch.device) -> None:
        super().__init__(cfg, opts, device)
        self.E = ConvEncoder(cfg).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.J = JointDiscriminator(cfg).to(device)
        self.extra = {"J": self.J}
        eg = list(self.G.parameters()) + list(self.E.parameters())
        self.optims = {"EG": torch.optim.Adam(eg, opts.lr, betas=(opts.beta1, 0.999)), "J": _adam(self.J, opts)}

    def step(self, real: Tensor, amp: torch.autocast, idx: np.ndarray | None = None) -> dict[str, float]:
        assert self.E is not None
        b, device = real.shape[0], real.device
        ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
        bce = F.binary_cross_entropy_with_logits
        z = torch.randn(b, self.cfg.nz, device=device)
        with amp:
            z_real, fake = self.E(real), self.G(z)
            loss_j = bce(self.J(real, z_real.detach()).float(), ones) + bce(self.J(fake.detach(), z).float(), zeros)
        self.optims["J"].zero_grad(set_to_none=True)
        loss_j.backward()
        self.optims["J"].step()
        with amp:  # E and G fool J by swapping the labels
            loss_eg = bce(self.J(real, z_real).float(), zeros) + bce(self.J(fake, z).float(), ones)
        self.optims["EG"].zero_grad(set_to_none=True)
        loss_eg.backward()
        self.optims["EG"].step()
        return {"D": loss_j.item(), "EG": loss_eg.item()}


class CGAN(Family):
    """The attribute-conditional family: see CganOptions."""

    def __init__(self, cfg: ModelConfig, opts: TrainOptions, device: torch.device) -> None:
        assert isinstance(opts, CganOptions)
        self.cfg, self.opts = cfg, opts
        G = CondGenerator(cfg).to(device)
        self.G = G  # type: ignore[assignment]
        self.D = ProjectedDiscriminator(cfg).to(device).attach_features()  # type: ignore[assignment]
        self.E = None
        betas = (opts.beta1, opts.beta2)
        self.label_weights = G.label_weights()
        labels = {id(p) for p in self.label_weights}
        groups: list[dict[str, Any]] = [
            {"params": [p for p in G.parameters() if id(p) not in labels or not opts.labels_lr]}
        ]
        if opts.labels_lr:  # a group of their own (only then, so runs from before resume as they were)
            groups.append({"params": self.label_weights, "lr": opts.labels_lr})
        self.optims = {
            "G": torch.optim.Adam(
                groups,
                opts.lr,
                betas=betas,
            ),
            "D": torch.optim.Adam(
                [p for p in self.D.parameters() if p.requires_grad], opts.lr_d or opts.lr, betas=betas
            ),
        }
        # The auxiliary attribute classifier (AC-GAN, Odena et al. 2017; StarGAN's D_cls), a linear
        # map of the frozen EfficientNet features: learnt on the real faces' known labels, it makes G
        # pay when its face does not show the y it was given. (On D's own trunk it had learnt next to
        # nothing after 330 steps: MODEL_CARD.md, "Conditioning".)
        self.C: nn.Linear | None = None
        self.extra = {}
        if opts.classify:
            self.net = load_features().to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.C = nn.Linear(ATTRIBUTE_FEATURES, len(cfg.conditions)).to(device)
            self.extra["C"] = self.C
            self.optims["C"] = torch.optim.Adam(self.C.parameters(), 1e-3)
        if opts.warm_start is not None and opts.resume is None:
            start = load_checkpoint(opts.warm_start, device, parts=("G", "D"))
            if start.cfg.family not in ("dcgan", "wgan-gp"):
                raise ValueError(f"{opts.warm_start}: a warm start is from a dcgan or wgan-gp, not {start.cfg.family}")
            warm_start(self.G, self.D, start.G, start.D)  # type: ignore[arg-type]
        self.labels: Tensor | None = None  # (N, K) signed labels of the data, 0 where unknown
        self.valid: Tensor | None = None

    def bind(self, data: CelebA) -> None:
        signed = data.signed_labels(self.cfg.conditions)
        self.labels = torch.from_numpy(signed)
        rate = [
            (signed[signed[:, k] != 0, k] > 0).mean() if (signed[:, k] != 0).any() else 0.5
            for k in range(signed.shape[1])
        ]
        assert isinstance(self.G, CondGenerator)
        self.G.y_prior.copy_(torch.tensor(rate, dtype=torch.float32))
        self.valid = None if data.valid is None else torch.from_numpy(data.valid)

    def step(self, real: Tensor, amp: torch.autocast, idx: np.ndarray | None = None) -> dict[str, float]:
        assert isinstance(self.opts, CganOptions) and isinstance(self.D, ProjectedDiscriminator)
        assert isinstance(self.G, CondGenerator) and self.labels is not None and idx is not None
        b, device = real.shape[0], real.device
        y_real = self.labels[torch.from_numpy(idx)].to(device)
        # y of the fakes: the data's label rates, each kept within [floor, 1 - floor], so that G also
        # practises the rare attributes (Eyeglasses is on 6.5% of the faces) it is asked to edit
        p = self.G.y_prior.clamp(self.opts.label_floor, 1 - self.opts.label_floor)
        y = (torch.rand(b, len(p), device=device) < p).float() * 2 - 1
        w = torch.cat([torch.randn(b, self.cfg.nz, device=device), y], 1)
        if self.opts.diversity:
            w[b // 2 : 2 * (b // 2), self.cfg.nz :] = w[: b // 2, self.cfg.nz :]
        y_fake = w[:, self.cfg.nz :]
        valid = None if self.valid is None else self.valid[torch.from_numpy(idx)].to(device)[:, None].float()
        aug = self.opts.augment

        def masked(fake: Tensor) -> Tensor:  # the real batch's partial-crop borders, filled as the data is
            if valid is None or bool(valid.all()):
                return fake
            fill = (fake * valid).sum((2, 3), keepdim=True) / valid.sum((2, 3), keepdim=True).clamp(min=1)
            return fake * valid + fill * (1 - valid)

        with amp:
            fake = self.G(w)
            real_aug = diff_augment(real, aug)
            with torch.no_grad():  # the frozen pyramid needs no graph; the conv branch takes the images after
                f_real = self.D.features(real_aug)
                f_fake = self.D.features(diff_augment(masked(fake.detach()), aug))
                a_real = self.attributes_seen(real_aug) if self.C is not None else None
            d_real = self.D.judge(f_real, y_real)
            d_fake = self.D.judge(f_fake, y_fake)
            loss_d = (F.relu(1 - d_real).mean(1) + F.relu(1 + d_fake).mean(1)).sum()  # hinge, per head
            # C learns the real faces' labels; its parameters are its own, so this term trains only C
            loss_c = attribute_loss(self.C(a_real), y_real) if self.C is not None else torch.zeros(())
        d_optims = [self.optims[n] for n in ("D", "C") if n in self.optims]
        for optim in d_optims:
            optim.zero_grad(set_to_none=True)
        (loss_d + loss_c).backward()
        for optim in d_optims:
            optim.step()
        frozen = [self.D.heads, self.D.conv, *([self.C] if self.C is not None else [])]
        for m in frozen:
            m.requires_grad_(False)
        with amp:
            fake_aug = diff_augment(masked(fake), aug)
            loss_g = -self.D(fake_aug, y_fake).mean()  # the heads' sum
            if self.opts.diversity:  # mode seeking (Mao et al. 2019): halves share y, differ in z
                h = b // 2
                img_d = (fake[:h] - fake[h : 2 * h]).float().abs().mean((1, 2, 3))
                z_d = (w[:h, : self.cfg.nz] - w[h : 2 * h, : self.cfg.nz]).abs().mean(1)
                loss_g = loss_g + self.opts.diversity / ((img_d / z_d).mean() + 1e-5)
            if self.C is not None:
                loss_cg = attribute_loss(self.C(self.attributes_seen(fake_aug)), y_fake)
                paid = self.classify_weight() * loss_cg
        self.optims["G"].zero_grad(set_to_none=True)
        self.backward_g(loss_g, paid if self.C is not None else None)
        self.optims["G"].step()
        for m in frozen:
            m.requires_grad_(True)
        out = {"D": loss_d.item(), "G": loss_g.item(), "D_real": d_real.mean().item(), "D_fake": d_fake.mean().item()}
        if self.C is not None:
            out.update(C_real=loss_c.item(), C_fake=loss_cg.item())
        return out

    def backward_g(self, loss_g: Tensor, paid: Tensor | None) -> None:
        """G's gradients: of D's terms through every weight, of C's (`paid`) through every weight
        or, with `classify_labels_only`, through `G.label_weights()` alone."""
        assert isinstance(self.opts, CganOptions)
        if paid is not None and self.opts.classify_labels_only:
            loss_g.backward(retain_graph=True)
            paid.backward(inputs=self.label_weights)
        else:
            (loss_g if paid is None else loss_g + paid).backward()

    def classify_weight(self) -> float:
        """What G pays for C's loss: nothing while C is young, rising to `classify` over
        `classify_warmup` of C's updates (Adam's count, kept in the resume file). A C that has not
        learnt the faces yet is a random map of the frozen features, and G chasing it draws
        patterns only that network sees (MODEL_CARD.md, "Warm start")."""
        assert self.C is not None and isinstance(self.opts, CganOptions)
        warmup = self.opts.classify_warmup
        if not warmup:
            return self.opts.classify
        state = self.optims["C"].state.get(self.C.weight, {})
        age = float(state.get("step", 0))
        return self.opts.classify * min(1.0, max(0.0, 2 * age / warmup - 1))

    def attributes_seen(self, x: Tensor) -> Tensor:
        """The frozen features C reads of images x (B, 3, S, S), at the network's 64 px."""
        if x.shape[-1] != 64:
            x = F.interpolate(x, size=64, mode="bilinear", align_corners=False)
        return attribute_features(self.net(x.contiguous(memory_format=torch.channels_last)))


def attribute_loss(logits: Tensor, signed: Tensor) -> Tensor:
    """Binary cross-entropy of attribute logits (B, K) against signed labels (B, K): +1 has, -1 has
    not, 0 unknown (not counted); summed over attributes, averaged over the batch (as StarGAN)."""
    known = (signed != 0).float()
    bce = F.binary_cross_entropy_with_logits(logits.float(), (signed > 0).float(), reduction="none")
    return (bce * known).sum() / logits.shape[0]


FAMILY_CLASSES: dict[str, type[Family]] = {
    "dcgan": GAN,
    "wgan-gp": GAN,
    "vae": VAE,
    "vaegan": VAEGAN,
    "bigan": BiGAN,
    "cgan": CGAN,
}


def gan_step(
    G: Generator,
    D: Discriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    amp: torch.autocast,
) -> tuple[float, float]:
    """One DCGAN step on a batch of real faces (B, 3, S, S); returns (D loss, G loss)."""
    b, device = real.shape[0], real.device
    ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
    with amp:
        fake = G(torch.randn(b, G.cfg.nz, device=device))
        # D: push real logits up, fake down (non-saturating GAN loss, Goodfellow et al. 2014)
        loss_d = F.binary_cross_entropy_with_logits(D(real).float(), ones) + F.binary_cross_entropy_with_logits(
            D(fake.detach()).float(), zeros
        )
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    with amp:
        loss_g = F.binary_cross_entropy_with_logits(D(fake).float(), ones)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()
