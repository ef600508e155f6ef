"""Checkpoints: `model.safetensors` + `config.json` in one folder; nothing is unpickled.

config.json holds the format version, the ModelConfig, the face geometry (alignment), the
attribute names and counts, the training data and options, and metrics. model.safetensors holds tensors only: `G.*` (the
EMA generator), optionally `D.*`, `E.*`, and `directions` (K, nz).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from models.editnet import HEAD_GEOMETRY, EditNet, EditorConfig, EditorDiscriminator
from models.edits import Calibration, Direction
from models.geometry import CELEBA, FaceGeometry
from models.networks import (
    ConvEncoder,
    Discriminator,
    Generator,
    ModelConfig,
    build_encoder,
)
from models.projected import CondGenerator, FeatureEncoder, ProjectedDiscriminator

FORMAT_VERSION = 1
M = TypeVar("M", bound=nn.Module)


def build_generator(cfg: ModelConfig) -> Generator | CondGenerator:
    """G of the family: latent (B, cfg.latent_size) -> image."""
    return CondGenerator(cfg) if cfg.family == "cgan" else Generator(cfg)


def build_discriminator(cfg: ModelConfig) -> Discriminator | ProjectedDiscriminator:
    """D of the family (the projected one gets its frozen features from their package)."""
    return ProjectedDiscriminator(cfg).attach_features() if cfg.family == "cgan" else Discriminator(cfg)


def build_any_encoder(cfg: ModelConfig) -> nn.Module:
    return FeatureEncoder(cfg).attach_features() if cfg.encoder == "features" else build_encoder(cfg)


WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, malformed or does not match its config."""


@dataclass(frozen=True)
class LabelCounts:
    """Training faces labelled with an attribute, and without it."""

    with_label: int
    without_label: int


@dataclass(frozen=True)
class ModelMeta:
    """What the service reads of a checkpoint's meta (config.json beyond the model's own keys),
    typed: what strength 1 means by default, and the label counts behind each direction. Read
    through `FaceModel.typed_meta`; a checkpoint whose meta does not parse does not load."""

    default_strength: float = 1.0
    label_counts: dict[str, LabelCounts] = field(default_factory=dict)  # by attribute name

    @classmethod
    def from_json(cls, meta: dict[str, Any]) -> ModelMeta:
        """ValueError / TypeError when a key the service reads has the wrong shape."""
        strength = meta.get("default_strength", 1.0)
        if isinstance(strength, bool) or not isinstance(strength, int | float):
            raise TypeError(f"default_strength must be a number, got {strength!r}")
        counts = meta.get("attributes", {})
        if not isinstance(counts, dict):
            raise TypeError("attributes must map names to {'with': n, 'without': n}")
        return cls(
            float(strength),
            {name: LabelCounts(int(c["with"]), int(c["without"])) for name, c in counts.items()},
        )


@dataclass
class FaceModel:
    """Everything the service and the evaluation need: G, D, E and the edit directions."""

    cfg: ModelConfig
    G: Generator | CondGenerator
    D: Discriminator | ProjectedDiscriminator | None = None
    E: nn.Module | None = None  # an Encoder, or the conditional family's FeatureEncoder
    directions: Tensor | None = None  # (K, nz), row i edits attribute_names[i]
    attribute_names: list[str] = field(default_factory=list)
    calibrations: dict[str, Calibration] = field(default_factory=dict)  # by attribute name
    meta: dict[str, Any] = field(default_factory=dict)  # data, options, counts, metrics
    geometry: FaceGeometry = CELEBA  # the alignment the model was trained on

    @property
    def typed_meta(self) -> ModelMeta:
        return ModelMeta.from_json(self.meta)

    @classmethod
    def new(cls, cfg: ModelConfig) -> FaceModel:
        """A randomly initialised model with every part (for tests and the first run)."""
        return cls(cfg, Generator(cfg), Discriminator(cfg), build_encoder(cfg))

    def to(self, device: torch.device | str) -> FaceModel:
        for m in (self.G, self.D, self.E):
            if m is not None:
                m.to(device)
        if self.directions is not None:
            self.directions = self.directions.to(device)
        return self

    def eval(self) -> FaceModel:
        for m in (self.G, self.D, self.E):
            if m is not None:
                m.eval().requires_grad_(False)
        return self

    def direction(self, name: str) -> Tensor:
        if self.directions is None or name not in self.attribute_names:
            raise KeyError(name)
        return self.directions[self.attribute_names.index(name)]

    def attribute(self, name: str) -> Direction:
        """`name`'s edit: its direction and what strength 1 means (as calibrated, or the
        direction itself on the whole head when never calibrated). KeyError if unknown."""
        v = self.direction(name)
        return Direction(name, v, self.calibrations.get(name) or Calibration.assumed(v))


def save_checkpoint(path: str | Path, model: FaceModel, half: bool = False) -> Path:
    """Write model.safetensors (fp16 when `half`) and config.json into folder `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    for prefix, module in (("G", model.G), ("D", model.D), ("E", model.E)):
        if module is not None:
            tensors.update(_prefixed(prefix, module))
    if model.directions is not None:
        tensors["directions"] = model.directions
    dtype = torch.float16
    tensors = {
        k: (v.to(dtype) if half and v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in tensors.items()
    }
    config = {
        "format_version": FORMAT_VERSION,
        "model": asdict(model.cfg),
        "parts": [p for p, m in (("G", model.G), ("D", model.D), ("E", model.E)) if m is not None],
        "attribute_names": model.attribute_names,
        "face_geometry": model.geometry.to_json(),
        **model.meta,
    }
    if model.calibrations:  # beside the rest of what calibration measured (meta["directions"]["calibration"])
        directions = config["directions"] = dict(config.get("directions", {}))
        summary = directions["calibration"] = dict(directions.get("calibration", {}))
        summary["attributes"] = {n: c.to_json() for n, c in model.calibrations.items()}
    tmp = path / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path / WEIGHTS)  # atomic: a reader never sees half a file
    (path / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return path


def _prefixed(prefix: str, module: nn.Module) -> dict[str, Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def read_config(path: str | Path) -> dict[str, Any]:
    """config.json of a checkpoint folder, checked for format and model dimensions."""
    cfg_path = Path(path) / CONFIG
    if not cfg_path.is_file():
        raise CheckpointError(f"{path}: no {CONFIG} (is this a checkpoint folder?)")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({e})") from e
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_path}: format_version {config.get('format_version') if isinstance(config, dict) else None!r}"
            f" is not supported (expected {FORMAT_VERSION})"
        )
    return config


def model_config(config: dict[str, Any]) -> ModelConfig:
    known = {f.name for f in fields(ModelConfig)}
    raw = config.get("model")
    if not isinstance(raw, dict) or set(raw) - known:
        raise CheckpointError(f"config 'model' must be an object with keys from {sorted(known)}")
    try:
        return ModelConfig(**raw)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"config 'model' is invalid: {e}") from e


def _weights(path: Path) -> dict[str, Tensor]:
    """The tensors of a checkpoint folder's model.safetensors; a CheckpointError if it is not one."""
    try:
        return load_file(str(path / WEIGHTS), device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no {WEIGHTS}") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path / WEIGHTS}: not a valid safetensors file ({e})") from e


def _load_part(path: Path, tensors: dict[str, Tensor], prefix: str, module: nn.Module) -> None:
    """`module`'s weights from the tensors under `prefix.`, in fp32, in place."""
    state = {
        k[len(prefix) + 1 :]: v.float() if v.is_floating_point() else v
        for k, v in tensors.items()
        if k.startswith(prefix + ".")
    }
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights of {prefix} do not match config: {e}") from e


def load_checkpoint(
    path: str | Path, device: torch.device | str = "cpu", parts: tuple[str, ...] = ("G", "D", "E")
) -> FaceModel:
    """Rebuild a FaceModel from a folder, in eval mode, fp32; any mismatch is a CheckpointError."""
    path = Path(path)
    config = read_config(path)
    cfg = model_config(config)
    tensors = _weights(path)

    def load(prefix: str, module: nn.Module) -> None:
        _load_part(path, tensors, prefix, module)

    if not any(k.startswith("G.") for k in tensors):
        raise CheckpointError(f"{path}: has no generator weights (G.*)")
    model = FaceModel(cfg, build_generator(cfg))
    load("G", model.G)
    saved = config.get("parts", [])
    if "D" in parts and "D" in saved:
        model.D = build_discriminator(cfg)
        load("D", model.D)
    if "E" in parts and "E" in saved:
        model.E = build_any_encoder(cfg)
        load("E", model.E)
    names = config.get("attribute_names", [])
    if "directions" in tensors:
        d = tensors["directions"].float()
        if d.dim() != 2 or d.shape != (len(names), cfg.latent_size):
            raise CheckpointError(
                f"{path}: directions have shape {tuple(d.shape)}, expected ({len(names)}, {cfg.latent_size})"
            )
        model.directions = d
        model.attribute_names = list(names)
    if "face_geometry" in config:  # older checkpoints were all trained on CelebA's alignment
        try:
            model.geometry = FaceGeometry.from_json(config["face_geometry"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: face_geometry is invalid: {e}") from e
    own = ("format_version", "model", "parts", "attribute_names", "face_geometry")
    model.meta = {k: v for k, v in config.items() if k not in own}
    model.calibrations = _calibrations(path, model.meta, model.attribute_names)
    try:
        ModelMeta.from_json(model.meta)  # checked once here, so that the service can rely on it
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: meta is invalid: {e}") from e
    return model.to(device).eval()


def _calibrations(path: Path, meta: dict[str, Any], names: list[str]) -> dict[str, Calibration]:
    """The calibrated attributes, parsed and checked, taken out of `meta` (they are written back
    from `FaceModel.calibrations`)."""
    summary = meta.get("directions", {}).get("calibration") if isinstance(meta.get("directions"), dict) else None
    if not isinstance(summary, dict) or "attributes" not in summary:
        return {}
    raw = summary.pop("attributes")
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: directions.calibration.attributes must be an object")
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise CheckpointError(f"{path}: calibration of attributes without a direction: {unknown}")
    out = {}
    for name, cal in raw.items():
        try:
            out[name] = Calibration.from_json(cal)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: calibration of {name} is invalid: {e}") from e
    return out


def optimizer_state(optim: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, Tensor], str]:
    """Flatten an optimiser's state into safetensors tensors plus its param groups as JSON."""
    sd = optim.state_dict()
    tensors = {
        f"{prefix}.{pid}.{k}": (v if isinstance(v, Tensor) else torch.tensor(v))
        for pid, st in sd["state"].items()
        for k, v in st.items()
    }
    return tensors, json.dumps(sd["param_groups"])


def load_optimizer_state(optim: torch.optim.Optimizer, tensors: dict[str, Tensor], prefix: str, groups: str) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    optim.load_state_dict({"state": state, "param_groups": json.loads(groups)})


__all__ = [
    "CheckpointError",
    "ConvEncoder",
    "FaceModel",
    "load_checkpoint",
    "read_config",
    "save_checkpoint",
]


# --- the image-to-image editor (models/editnet.py): same folder format, family "editnet" ----------


@dataclass(frozen=True)
class EditorCalibration:
    """What strength 1 of one attribute is for the editor: the difference `scale` it sends when
    adding it and `remove_scale` when taking it away (None: the same; `python -m training
    editor-calibrate` chooses each on the held-out faces that start on that side), and the shares
    of held-out faces it then reached and kept."""

    scale: float
    reached: float | None = None
    same_person: float | None = None
    remove_scale: float | None = None

    def __post_init__(self) -> None:
        for v in (self.scale, self.remove_scale):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"scales must be finite numbers > 0, got {v}")
        for v in (self.reached, self.same_person):
            if v is not None and not 0 <= v <= 1:
                raise ValueError(f"shares must lie in [0, 1], got {v}")


@dataclass
class EditorModel:
    """The editor (its EMA copy) and optionally its discriminator, with what it was trained on."""

    cfg: EditorConfig
    G: EditNet
    D: EditorDiscriminator | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # training, guides, metrics
    geometry: FaceGeometry = HEAD_GEOMETRY
    calibrations: dict[str, EditorCalibration] = field(default_factory=dict)  # by attribute name

    def scale(self, name: str, remove: bool = False) -> float:
        """The difference strength 1 of `name` sends, adding it or (`remove`) taking it away (1 where
        never calibrated); KeyError if unknown."""
        if name not in self.cfg.attributes:
            raise KeyError(name)
        cal = self.calibrations.get(name)
        if cal is None:
            return 1.0
        return cal.remove_scale if remove and cal.remove_scale is not None else cal.scale

    @property
    def attribute_names(self) -> list[str]:
        return list(self.cfg.attributes)

    def to(self, device: torch.device | str) -> EditorModel:
        for m in (self.G, self.D):
            if m is not None:
                m.to(device)
        return self

    def eval(self) -> EditorModel:
        for m in (self.G, self.D):
            if m is not None:
                m.eval().requires_grad_(False)
        return self


def family_of(path: str | Path) -> str:
    """The family a checkpoint folder holds ("editnet", "dcgan", "cgan", ...)."""
    raw = read_config(path).get("model")
    return str(raw.get("family", "dcgan")) if isinstance(raw, dict) else "dcgan"


def save_editor(path: str | Path, model: EditorModel, half: bool = False) -> Path:
    """The editor's folder: model.safetensors (`G.*`, `D.*`) + config.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    parts = {p: m for p, m in (("G", model.G), ("D", model.D)) if m is not None}
    tensors = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
        for p, m in parts.items()
        for k, v in _prefixed(p, m).items()
    }
    config = {
        "format_version": FORMAT_VERSION,
        "model": {**asdict(model.cfg), "attributes": list(model.cfg.attributes)},
        "parts": list(parts),
        "attribute_names": model.attribute_names,
        "face_geometry": model.geometry.to_json(),
        **model.meta,
    }
    if model.calibrations:
        config["calibration"] = {n: asdict(c) for n, c in model.calibrations.items()}
    tmp = path / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path / WEIGHTS)
    (path / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return path


def load_editor(
    path: str | Path, device: torch.device | str = "cpu", parts: tuple[str, ...] = ("G", "D")
) -> EditorModel:
    """Rebuild an EditorModel from its folder, in eval mode, fp32; any mismatch is a CheckpointError."""
    path = Path(path)
    config = read_config(path)
    raw = config.get("model")
    known = {f.name for f in fields(EditorConfig)}
    if not isinstance(raw, dict) or raw.get("family") != "editnet" or set(raw) - known:
        raise CheckpointError(f"{path}: not an editor checkpoint (model.family 'editnet', keys from {sorted(known)})")
    try:
        cfg = EditorConfig(**{**raw, "attributes": tuple(raw.get("attributes", ()))})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: config 'model' is invalid: {e}") from e
    tensors = _weights(path)

    def part(prefix: str, module: M) -> M:
        _load_part(path, tensors, prefix, module)
        return module

    model = EditorModel(cfg, part("G", EditNet(cfg)))
    if "D" in parts and "D" in config.get("parts", []):
        model.D = part("D", EditorDiscriminator(cfg))
    try:
        model.geometry = FaceGeometry.from_json(config["face_geometry"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: face_geometry is missing or invalid: {e}") from e
    own = ("format_version", "model", "parts", "attribute_names", "face_geometry", "calibration")
    model.meta = {k: v for k, v in config.items() if k not in own}
    raw_cal = config.get("calibration", {})
    try:
        if not isinstance(raw_cal, dict) or set(raw_cal) - set(cfg.attributes):
            raise ValueError(f"an object keyed by the editor's attributes, got {sorted(raw_cal)}")
        model.calibrations = {n: EditorCalibration(**c) for n, c in raw_cal.items()}
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: calibration is invalid: {e}") from e
    return model.to(device).eval()
