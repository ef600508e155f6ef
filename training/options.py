"""The options of every generative family's training: one frozen dataclass per family, each
validated when made, written as options.json into its run folder and read back by `--resume`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.networks import ModelConfig
from training.folders import DataOptions


@dataclass(frozen=True, kw_only=True)
class TrainOptions(DataOptions):
    """What every generative family's training shares."""

    outdir: Path = Path("runs")
    image_size: int = 64
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    batch: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    kimg: float = 100.0  # thousands of real images shown
    ema_decay: float = 0.999
    snapshot_every: int = 200  # steps between sample grids, plots and checkpoints
    resume: Path | None = None  # a run folder to continue
    minutes: float | None = None  # stop (with a snapshot) after this many minutes of this process's training

    def __post_init__(self) -> None:
        if self.batch < 2 or self.lr <= 0 or self.kimg <= 0 or not 0 <= self.ema_decay < 1:
            raise ValueError("need batch >= 2, lr > 0, kimg > 0 and 0 <= ema_decay < 1")
        self.model_config()

    @property
    def family(self) -> str:
        raise NotImplementedError

    def model_config(self) -> ModelConfig:
        encoder = "conv" if self.family in ("vae", "vaegan", "bigan") else "transfer"
        return ModelConfig(
            nz=self.nz, ngf=self.ngf, ndf=self.ndf, image_size=self.image_size, family=self.family, encoder=encoder
        )


@dataclass(frozen=True, kw_only=True)
class GanOptions(TrainOptions):
    loss: str = "dcgan"  # dcgan: the non-saturating GAN loss; wgan-gp: Wasserstein + gradient penalty
    gp_weight: float = 10.0  # WGAN-GP's lambda

    def __post_init__(self) -> None:
        if self.loss not in ("dcgan", "wgan-gp"):
            raise ValueError(f"loss must be dcgan or wgan-gp, got {self.loss!r}")
        super().__post_init__()

    @property
    def family(self) -> str:
        return self.loss


@dataclass(frozen=True, kw_only=True)
class VaeOptions(TrainOptions):
    kl_weight: float = 1.0  # weight of KL(q(z|x) || N(0, I)) against the per-pixel reconstruction

    @property
    def family(self) -> str:
        return "vae"


@dataclass(frozen=True, kw_only=True)
class VaeGanOptions(VaeOptions):
    gamma: float = 1.0  # weight of the feature-space reconstruction in G's loss (Larsen et al. 2016)

    @property
    def family(self) -> str:
        return "vaegan"


# What the conditional G takes: the service's editable attributes and the ones most entangled with
# them (hair colours, makeup), so that they live in y, not in z.
EDITABLE = (
    "Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young", "Black_Hair",
    "Bald", "Mustache", "Heavy_Makeup", "Wavy_Hair", "Pale_Skin", "Wearing_Hat",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class CganOptions(TrainOptions):
    """G(z, y) against a projected, conditional discriminator (models/projected.py), hinge loss,
    DiffAugment on everything D sees; the validity mask of a partial crop is laid on the fakes
    it is compared with, so D cannot tell them apart by the filled border."""

    conditions: tuple[str, ...] = EDITABLE
    feature_size: int = 64  # 128 or more on a GPU; on CPUs the depthwise convs cost ~26 ms per image at 128
    # The frozen-feature heads' weight beside the conv branch. 0 by default: at 64 px on CPU budgets
    # every weight tried (1, 0.1) let G settle on one face texture that fools the frozen features
    # (MODEL_CARD.md, "The attribute-conditional family"); on a GPU at 128 px, try 0.1 - 1.
    projected_weight: float = 0.0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    augment: str = "color,translation,cutout"
    lr_d: float | None = None  # D's learning rate (default: lr)
    diversity: float = 1.0  # weight of the mode-seeking term (Mao et al. 2019): G pays for ignoring z
    # Weight of G's auxiliary attribute loss (AC-GAN, Odena et al. 2017; families.CGAN): with the
    # projection term alone, G learnt to ignore y (MODEL_CARD.md, "Conditioning"); 0 turns it off.
    classify: float = 1.0
    # C's updates before G pays it in full: nothing for the first half, then rising linearly
    classify_warmup: int = 600
    # C's gradient reaches only G.label_weights() (how y moves a face), not the weights that draw
    # the face: a classifier on frozen features, paid through every weight, bent the faces for it
    classify_labels_only: bool = False
    labels_lr: float | None = None  # G.label_weights()' learning rate (default: lr), e.g. 10x a warm start's
    label_floor: float = 0.25  # fakes' labels are drawn on at least this often (and off as often)
    # An unconditional DCGAN checkpoint (nz, ngf, ndf and size as this run's) to start G and D from,
    # y entering at zero weight (models.projected.warm_start); ignored on --resume.
    warm_start: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.label_floor <= 0.5 or self.classify < 0 or self.classify_warmup < 0:
            raise ValueError("need 0 <= label_floor <= 0.5, classify >= 0 and classify_warmup >= 0")
        super().__post_init__()

    @property
    def family(self) -> str:
        return "cgan"

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            nz=self.nz, ngf=self.ngf, ndf=self.ndf, image_size=self.image_size, family="cgan",
            encoder="features", conditions=self.conditions, feature_size=self.feature_size,
            projected_weight=self.projected_weight,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class BiganOptions(TrainOptions):
    @property
    def family(self) -> str:
        return "bigan"
