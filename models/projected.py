"""The attribute-conditional family ("cgan"): G(z, y) and a projected, conditional discriminator.

- `CondGenerator` is the DCGAN generator with conditional BatchNorm (de Vries et al. 2017;
  Miyato & Koyama 2018): every BatchNorm's scale and shift are moved by a linear map of y, and
  y is also concatenated to z at the input (IcGAN, Perarnau et al. 2016). Its input is the
  service's latent w = [z, y]: (B, nz + K), y in label space (+1 has the attribute, -1 has not,
  values between or beyond are allowed), so an edit is a move of w like in every other family.
- `ProjectedDiscriminator` (Projected GAN, Sauer et al. 2021) judges images in the feature
  pyramid of a frozen EfficientNet-Lite0 (models/features.py): random, fixed cross-channel
  (1x1) and cross-scale (upsample + 3x3) mixing, then one small trainable head per level
  (spectral-normalised strided convs). Each head adds a projection term (Miyato & Koyama 2018)
  for the attributes whose label is known: logit = h(x) + sum_k m_k s_k <w_k, phi(x)> / sqrt(d),
  with s_k = +-1 the label and m_k whether it is known, so sets without some labels still train.
The pretrained network is not part of the module's state: it is loaded from its package.
`warm_start` starts both from an unconditional DCGAN of the same shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from models.features import LEVEL_CHANNELS, EfficientNetLite0, load_features
from models.networks import Discriminator, Generator, ModelConfig, _conv_trunk, init_weights

MIX_CHANNELS = (64, 128, 256, 512)  # channels of the four mixed levels
CMAP = 64  # width of the projection embedding per head


class CondBatchNorm(nn.Module):
    """BatchNorm without affine; scale and shift are (1 + gamma(y), beta(y)) per sample."""

    def __init__(self, channels: int, n_cond: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Linear(n_cond, channels)
        self.beta = nn.Linear(n_cond, channels)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        g, b = self.gamma(y)[:, :, None, None], self.beta(y)[:, :, None, None]
        return self.bn(x) * (1 + g) + b


class CondGenerator(nn.Module):
    """w = [z, y] (B, nz + K) -> image (B, nc, S, S) in [-1, 1]."""

    y_prior: Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k = len(cfg.conditions)
        ch = cfg.ngf * 2**cfg.n_mid
        # (nz + K) x 1 x 1 -> ch x 4 x 4
        self.convs = nn.ModuleList([nn.ConvTranspose2d(cfg.nz + k, ch, 4, 1, 0, bias=False)])
        self.norms = nn.ModuleList([CondBatchNorm(ch, k)])
        for _ in range(cfg.n_mid):
            # ch x s x s -> (ch/2) x 2s x 2s, ending at ngf x S/2 x S/2
            self.convs.append(nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False))
            self.norms.append(CondBatchNorm(ch // 2, k))
            ch //= 2
        self.to_rgb = nn.ConvTranspose2d(ch, cfg.nc, 4, 2, 1, bias=False)  # ngf x S/2 x S/2 -> nc x S x S
        # The marginal rate of each condition in the training data: what `sample` draws y from.
        self.register_buffer("y_prior", torch.full((k,), 0.5))
        self.apply(init_weights)
        for n in self.norms:
            assert isinstance(n, CondBatchNorm)
            for lin in (n.gamma, n.beta):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def forward(self, w: Tensor) -> Tensor:
        y = w[:, self.cfg.nz :]
        h = w.view(w.shape[0], -1, 1, 1)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = F.relu(norm(conv(h), y))
        return torch.tanh(self.to_rgb(h))

    def label_weights(self) -> list[Tensor]:
        """The weights through which y moves the face: each conditional BatchNorm's maps of y
        (their biases are y-independent scales and shifts, like an unconditional BatchNorm's)."""
        out = []
        for n in self.norms:
            assert isinstance(n, CondBatchNorm)
            out += [n.gamma.weight, n.beta.weight]
        return out

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n latents [z ~ N(0, I), y = +-1 ~ Bernoulli(y_prior)] (n, nz + K), on G's device."""
        prior = self.y_prior.float().cpu()
        z = torch.randn(n, self.cfg.nz, generator=generator)
        y = (torch.rand(n, len(prior), generator=generator) < prior).float() * 2 - 1
        return torch.cat([z, y], 1).to(self.y_prior.device)


def _sn_conv(cin: int, cout: int, k: int, s: int, p: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, s, p))


def minibatch_std(h: Tensor, group: int = 4) -> Tensor:
    """(B, C, H, W) -> (B, 1, H, W): the features' standard deviation across each group of `group`
    samples, averaged over channels (StyleGAN's minibatch std; Karras et al. 2018). It lets D see
    a batch without variety, which is how a G that ignores z is caught."""
    b, c, hh, ww = h.shape
    g = group if b % group == 0 else 1
    if g == 1:
        return h.new_zeros(b, 1, hh, ww)
    y = h.float().view(g, b // g, c, hh, ww)
    std = (y.var(0, unbiased=False) + 1e-8).sqrt().mean(1, keepdim=True)  # (B/g, 1, H, W)
    return std.repeat(g, 1, 1, 1).to(h.dtype)


class _Head(nn.Module):
    """One level: C x r x r -> (logit map (B, 1, 4, 4) summed to (B,), features (B, CMAP))."""

    def __init__(self, cin: int, res: int, n_cond: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = cin
        while res > 4:
            out = min(ch * 2, 512) if ch < 256 else ch
            layers += [_sn_conv(ch, out, 4, 2, 1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2, inplace=True)]
            ch, res = out, res // 2
        self.down = nn.Sequential(*layers)
        self.logit = _sn_conv(ch + 1, 1, 3, 1, 1)  # + the minibatch standard deviation channel
        self.phi = _sn_conv(ch, CMAP, 3, 1, 1)
        self.embed = nn.Linear(n_cond, CMAP, bias=False) if n_cond else None

    def forward(self, f: Tensor, signed: Tensor | None) -> Tensor:
        h = self.down(f)
        out = self.logit(torch.cat([h, minibatch_std(h)], 1)).float().mean((1, 2, 3))
        if self.embed is not None and signed is not None:
            proj = (self.phi(h).float().mean((2, 3)) * self.embed(signed.float())).sum(1) / math.sqrt(CMAP)
            out = out + proj
        return out


class _ConvBranch(nn.Module):
    """The DCGAN discriminator on the image itself, with the same projection term: beside the
    frozen features it keeps G honest about variety (a D on pretrained features alone let G
    settle on one face within minutes here; Vision-aided GAN, Kumari et al. 2022, keeps the
    original D for the same reason)."""

    def __init__(self, cfg: ModelConfig, n_cond: int) -> None:
        super().__init__()
        self.trunk = _conv_trunk(cfg)  # nc x S x S -> (ndf * 2**n_mid) x 4 x 4
        ch = cfg.ndf * 2**cfg.n_mid
        self.logit = nn.Conv2d(ch, 1, 4, 1, 0, bias=False)
        self.embed = nn.Linear(n_cond, ch, bias=False) if n_cond else None
        self.apply(init_weights)

    def forward(self, x: Tensor, signed: Tensor | None) -> Tensor:
        h = self.trunk(x)
        out = self.logit(h).float().flatten()
        if self.embed is not None and signed is not None:
            out = out + (h.float().mean((2, 3)) * self.embed(signed.float())).sum(1) / math.sqrt(h.shape[1])
        return out


class ProjectedDiscriminator(nn.Module):
    """(image (B, nc, S, S) in [-1, 1], signed labels (B, K) in {-1, 0, +1}) -> logit (B,).

    `signed` is +1 / -1 where an attribute's label is known and 0 where it is not (or None for
    an unconditional judgement: the realism term of the optimised edit uses the labels the edit
    asks for). Call `attach_features()` before use: the frozen network is loaded, not stored.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k = len(cfg.conditions)
        # Cross-channel mixing: random 1x1 convs; cross-scale: upsample the deeper level, random 3x3.
        self.ccm = nn.ModuleList([nn.Conv2d(c, m, 1) for c, m in zip(LEVEL_CHANNELS, MIX_CHANNELS, strict=True)])
        self.csm = nn.ModuleList([nn.Conv2d(MIX_CHANNELS[i + 1], MIX_CHANNELS[i], 3, 1, 1) for i in range(3)])
        self.ccm.requires_grad_(False)
        self.csm.requires_grad_(False)
        res = [cfg.feature_size // s for s in (4, 8, 16, 32)]
        self.heads = nn.ModuleList([_Head(m, r, k) for m, r in zip(MIX_CHANNELS, res, strict=True)])
        self.conv = _ConvBranch(cfg, k)
        self._features: tuple[EfficientNetLite0, ...] = ()  # not a submodule: never saved

    def attach_features(self, net: EfficientNetLite0 | None = None) -> ProjectedDiscriminator:
        if not self.cfg.projected_weight:
            return self
        device = next(self.parameters()).device
        self._features = ((net or load_features()).to(device, memory_format=torch.channels_last),)  # type: ignore[call-overload]
        return self

    def features(self, x: Tensor) -> list[Tensor]:
        """The mixed pyramid (4 maps) of images x, then x itself: what the heads and the conv branch judge."""
        image = x
        if not self.cfg.projected_weight:
            return [image]  # the conv branch alone: no features to compute
        if not self._features:
            raise RuntimeError("ProjectedDiscriminator.attach_features() was not called")
        if x.shape[-1] != self.cfg.feature_size:
            x = F.interpolate(x, size=self.cfg.feature_size, mode="bilinear", align_corners=False)
        x = x.contiguous(memory_format=torch.channels_last)  # depthwise convs run ~25% faster so on CPUs
        levels = [conv(f) for conv, f in zip(self.ccm, self._features[0](x), strict=True)]
        mixed = [levels[3]]
        for i in (2, 1, 0):
            up = F.interpolate(mixed[0], scale_factor=2, mode="bilinear", align_corners=False)
            mixed.insert(0, levels[i] + self.csm[i](up))
        return [*mixed, image]

    def judge(self, features: list[Tensor], signed: Tensor | None = None) -> Tensor:
        """Each head's logit on what `features` gave, the conv branch last: (5, B); the loss is per head."""
        *pyramid, image = features
        w = self.cfg.projected_weight
        logits = [w * head(f, signed) for head, f in zip(self.heads, pyramid, strict=False)]
        return torch.stack([*logits, self.conv(image, signed)])

    def forward(self, x: Tensor, signed: Tensor | None = None) -> Tensor:
        """The realism logit (B,): the heads' sum."""
        return self.judge(self.features(x), signed).sum(0)

    def to(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        out = super().to(*args, **kwargs)
        if self._features:
            self._features = (self._features[0].to(*args, **kwargs),)
        return out


class FeatureEncoder(nn.Module):
    """image (B, nc, S, S) -> latent w = [z, y] (B, nz + K): a trainable head on the frozen
    EfficientNet-Lite0 pyramid (its 8x8 and 4x4 levels at feature_size 128, flattened, so
    pose and layout survive). The feature network is attached, not stored, as in the D."""

    def __init__(self, cfg: ModelConfig, hidden: int = 512) -> None:
        super().__init__()
        self.cfg = cfg
        s = cfg.feature_size
        flat = LEVEL_CHANNELS[2] * (s // 16) ** 2 + LEVEL_CHANNELS[3] * (s // 32) ** 2
        self.head = nn.Sequential(
            nn.Linear(flat, hidden), nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, cfg.latent_size)
        )
        self._features: tuple[EfficientNetLite0, ...] = ()

    def attach_features(self, net: EfficientNetLite0 | None = None) -> FeatureEncoder:
        device = next(self.parameters()).device
        self._features = ((net or load_features()).to(device, memory_format=torch.channels_last),)  # type: ignore[call-overload]
        return self

    @property
    def net(self) -> EfficientNetLite0:
        """The frozen feature network it reads (also the perceptual term's)."""
        if not self._features:
            raise RuntimeError("FeatureEncoder.attach_features() was not called")
        return self._features[0]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.cfg.feature_size:
            x = F.interpolate(x, size=self.cfg.feature_size, mode="bilinear", align_corners=False)
        levels = self.net(x.contiguous(memory_format=torch.channels_last))
        return self.head(torch.cat([levels[2].flatten(1), levels[3].flatten(1)], 1))

    def to(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        out = super().to(*args, **kwargs)
        if self._features:
            self._features = (self._features[0].to(*args, **kwargs),)
        return out


@torch.no_grad()
def warm_start(G: CondGenerator, D: ProjectedDiscriminator, G0: Generator, D0: Discriminator | None) -> None:
    """Start the conditional family from an unconditional DCGAN (G0, D0) of the same shape.

    Every weight is copied and y enters at zero weight (its rows of the first convolution, every
    BatchNorm's gamma(y) and beta(y), D's projection), so at the start G(z, y) = G0(z) for any y
    and D's conv branch judges as D0 did; what training adds is how y moves the face. The
    frozen-feature heads, which D0 does not have, start as they would anyway.
    """
    a, b = G.cfg, G0.cfg
    if (a.nz, a.ngf, a.image_size, a.nc) != (b.nz, b.ngf, b.image_size, b.nc):
        raise ValueError(
            f"a warm start needs the same nz, ngf and image size: the cgan has {a.nz}, {a.ngf}, {a.image_size} px, "
            f"the checkpoint {b.nz}, {b.ngf}, {b.image_size} px"
        )
    convs = [m for m in G0.main if isinstance(m, nn.ConvTranspose2d)]
    norms = [m for m in G0.main if isinstance(m, nn.BatchNorm2d)]
    first = G.convs[0].weight
    assert isinstance(first, Tensor)
    first.zero_()[: a.nz].copy_(convs[0].weight)
    for conv, source in zip(G.convs[1:], convs[1:-1], strict=True):
        assert isinstance(conv, nn.ConvTranspose2d)
        conv.weight.copy_(source.weight)
    G.to_rgb.weight.copy_(convs[-1].weight)
    for norm, bn in zip(G.norms, norms, strict=True):
        assert isinstance(norm, CondBatchNorm) and bn.bias is not None
        norm.bn.load_state_dict({k: v for k, v in bn.state_dict().items() if k not in ("weight", "bias")})
        for lin, value in ((norm.gamma, bn.weight - 1), (norm.beta, bn.bias)):
            lin.weight.zero_()
            lin.bias.copy_(value)
    if D0 is not None:
        if D.cfg.ndf != D0.cfg.ndf:
            raise ValueError(f"a warm start needs the same ndf: the cgan has {D.cfg.ndf}, the checkpoint {D0.cfg.ndf}")
        D.conv.trunk.load_state_dict(D0.trunk.state_dict())
        D.conv.logit.weight.copy_(D0.head.weight)
        if D.conv.embed is not None:
            D.conv.embed.weight.zero_()
