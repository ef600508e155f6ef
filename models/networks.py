"""DCGAN generator and discriminator, and the three encoders E: image -> z.

Architecture follows the reference DCGAN (Radford et al. 2016; pytorch/examples dcgan):
transposed convolutions, BatchNorm, ReLU/tanh in G, LeakyReLU in D, N(0, 0.02) init.
Every size comes from a frozen `ModelConfig`, so a checkpoint rebuilds its model alone.
Images are (B, 3, S, S) in [-1, 1]; latents are (B, nz).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

ENCODER_KINDS = (
    "fc",
    "conv",
    "transfer",
    "features",
)  # features: frozen EfficientNet-Lite0 + head (models/projected.py)
# Generative families (see training/gan.py): the GANs have a post-hoc encoder; the VAE and
# VAE-GAN encoders output a Gaussian (mu, log sigma^2); BiGAN learns E jointly against a
# discriminator on (x, z) pairs.
# "cgan" is attribute-conditional: G(z, y) against a projected discriminator on frozen pretrained
# features (models/projected.py); its latent is z and y side by side.
FAMILIES = ("dcgan", "wgan-gp", "vae", "vaegan", "bigan", "cgan")
VARIATIONAL = ("vae", "vaegan")


@dataclass(frozen=True)
class ModelConfig:
    """Dimensions of G, D and E; stored in every checkpoint's config.json."""

    nz: int = 100  # latent size
    ngf: int = 64  # generator width (channels of its last hidden layer)
    ndf: int = 64  # discriminator / conv-encoder width
    nc: int = 3  # image channels
    image_size: int = 64  # 64 or 128
    encoder: str = "transfer"  # one of ENCODER_KINDS
    fc_hidden: int = 512  # hidden units of the fully-connected encoder
    family: str = "dcgan"  # one of FAMILIES: how G and E were trained
    conditions: tuple[str, ...] = ()  # cgan: the attributes G takes, in the order of y
    feature_size: int = 128  # cgan: the side images are resized to for the frozen feature network
    projected_weight: float = 1.0  # cgan: weight of the heads on frozen features beside D's conv branch (0: none)

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditions", tuple(self.conditions))  # JSON gives a list
        if (self.family == "cgan") != bool(self.conditions):
            raise ValueError("the cgan family needs conditions (attribute names), and only it takes them")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if self.image_size not in (64, 128):
            raise ValueError(f"image_size must be 64 or 128, got {self.image_size}")
        if self.encoder not in ENCODER_KINDS:
            raise ValueError(f"encoder must be one of {ENCODER_KINDS}, got {self.encoder!r}")
        for name in ("nz", "ngf", "ndf", "nc", "fc_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")

    @property
    def latent_size(self) -> int:
        """Width of the latent the service stores and edits: z, then y for a conditional G."""
        return self.nz + len(self.conditions)

    @property
    def n_mid(self) -> int:
        """Hidden up/down-sampling layers between 4x4 and S/2 x S/2 (3 at 64, 4 at 128)."""
        return int(math.log2(self.image_size)) - 3

    @classmethod
    def tiny(cls, **overrides: object) -> ModelConfig:
        """A few-thousand-parameter config for unit tests and dry runs."""
        base: dict[str, object] = {"nz": 8, "ngf": 4, "ndf": 4, "fc_hidden": 16}
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02), BatchNorm gamma ~ N(1, 0.02), beta = 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (B, nz) -> image (B, nc, S, S) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.ngf * 2**cfg.n_mid
        layers: list[nn.Module] = [
            # nz x 1 x 1 -> (ngf*8) x 4 x 4 at 64 px, (ngf*16) x 4 x 4 at 128 px
            nn.ConvTranspose2d(cfg.nz, ch, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(cfg.n_mid):
            # ch x s x s -> (ch/2) x 2s x 2s, ending at ngf x S/2 x S/2
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        # ngf x S/2 x S/2 -> nc x S x S
        layers += [nn.ConvTranspose2d(ch, cfg.nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z.view(z.shape[0], -1, 1, 1))


def _conv_trunk(cfg: ModelConfig) -> nn.Sequential:
    """nc x S x S -> (ndf * 2**n_mid) x 4 x 4: the DCGAN discriminator without its head."""
    layers: list[nn.Module] = [
        nn.Conv2d(cfg.nc, cfg.ndf, 4, 2, 1, bias=False),  # ndf x S/2 x S/2
        nn.LeakyReLU(0.2, inplace=True),
    ]
    ch = cfg.ndf
    for _ in range(cfg.n_mid):
        layers += [
            nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),  # (2ch) x s/2 x s/2
            nn.BatchNorm2d(ch * 2),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        ch *= 2
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """image (B, nc, S, S) -> realism logit (B,); `features` is the trunk reused by E."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.trunk = _conv_trunk(cfg)
        # (ndf * 2**n_mid) x 4 x 4 -> 1 x 1 x 1
        self.head = nn.Conv2d(cfg.ndf * 2**cfg.n_mid, 1, 4, 1, 0, bias=False)
        self.apply(init_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x)).flatten()


class FCEncoder(nn.Module):
    """Fully-connected baseline: flattened image -> hidden -> z."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.main = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cfg.nc * cfg.image_size**2, cfg.fc_hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(cfg.fc_hidden, cfg.latent_size),
        )
        self.apply(init_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class ConvEncoder(nn.Module):
    """Deep convolutional encoder: the discriminator's trunk shape with a z head.

    The transfer-learning encoder is this network with its trunk copied from a trained D
    (see `transfer_from`), so the two differ only by where their weights start. For the
    variational families the head outputs (mu, log sigma^2); `forward` gives mu, the
    encoding the service uses.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.trunk = _conv_trunk(cfg)
        out = 2 * cfg.nz if cfg.family in VARIATIONAL else cfg.latent_size
        # (ndf * 2**n_mid) x 4 x 4 -> latent (or 2 nz: mu and log sigma^2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cfg.ndf * 2**cfg.n_mid * 16, out))
        self.apply(init_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))[:, : self.cfg.latent_size]

    def distribution(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, log sigma^2), each (B, nz), of a variational encoder."""
        h = self.head(self.trunk(x))
        return h[:, : self.cfg.nz], h[:, self.cfg.nz :].clamp(-10, 10)

    def transfer_from(self, disc: Discriminator) -> ConvEncoder:
        """Start the trunk from a trained discriminator's weights (the transfer encoder)."""
        self.trunk.load_state_dict(copy.deepcopy(disc.trunk.state_dict()))
        return self


class JointDiscriminator(nn.Module):
    """BiGAN / ALI discriminator on (image, latent) pairs: (B, nc, S, S), (B, nz) -> logit (B,)."""

    def __init__(self, cfg: ModelConfig, hidden: int = 512) -> None:
        super().__init__()
        self.cfg = cfg
        self.trunk = _conv_trunk(cfg)  # image -> (ndf * 2**n_mid) x 4 x 4
        self.z_net = nn.Sequential(nn.Linear(cfg.nz, hidden), nn.LeakyReLU(0.2, inplace=True))
        self.head = nn.Sequential(
            nn.Linear(cfg.ndf * 2**cfg.n_mid * 16 + hidden, hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, 1),
        )
        self.apply(init_weights)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.head(torch.cat([self.trunk(x).flatten(1), self.z_net(z)], 1)).flatten()


Encoder = FCEncoder | ConvEncoder


def build_encoder(cfg: ModelConfig) -> Encoder:
    """The encoder named by cfg.encoder ("transfer" builds a ConvEncoder; copy D's trunk in)."""
    return FCEncoder(cfg) if cfg.encoder == "fc" else ConvEncoder(cfg)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers are copied."""
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm.detach(), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(bm)


def sample_latents(G: nn.Module, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n latents from G's prior: N(0, I) for the unconditional families; a conditional G also
    draws its labels (CondGenerator.sample). On the CPU unless G says otherwise."""
    sample = getattr(G, "sample", None)
    if sample is not None:
        return sample(n, generator)  # type: ignore[no-any-return]
    cfg: ModelConfig = G.cfg  # type: ignore[assignment]
    return torch.randn(n, cfg.nz, generator=generator)
