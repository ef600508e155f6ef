from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models import CheckpointError, FaceModel, ModelConfig, load_checkpoint, save_checkpoint


def _model() -> FaceModel:
    torch.manual_seed(0)
    m = FaceModel.new(ModelConfig.tiny(encoder="conv"))
    m.directions = torch.randn(2, m.cfg.nz)
    m.attribute_names = ["Smiling", "Male"]
    m.meta = {"default_strength": 1.5}
    return m.eval()


def test_round_trip_reproduces_outputs(tmp_path: Path) -> None:
    m = _model()
    save_checkpoint(tmp_path, m)
    loaded = load_checkpoint(tmp_path)
    z = torch.randn(2, m.cfg.nz)
    x = m.G(z)
    assert torch.equal(loaded.G(z), x)
    assert loaded.D is not None and loaded.E is not None and m.E is not None and m.D is not None
    assert torch.equal(loaded.D(x), m.D(x))
    assert torch.equal(loaded.E(x), m.E(x))
    assert loaded.attribute_names == ["Smiling", "Male"]
    assert torch.equal(loaded.direction("Male"), m.direction("Male"))
    assert loaded.meta["default_strength"] == 1.5
    assert loaded.cfg == m.cfg


def test_half_precision_round_trip_is_close(tmp_path: Path) -> None:
    m = _model()
    save_checkpoint(tmp_path, m, half=True)
    z = torch.randn(2, m.cfg.nz)
    assert torch.allclose(load_checkpoint(tmp_path).G(z), m.G(z), atol=2e-2)


def test_refuses_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path / "nope")


def test_refuses_pickle_and_garbage(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _model())
    (tmp_path / "model.safetensors").write_bytes(b"\x80\x04\x95 this is a pickle, not safetensors")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(tmp_path)


def test_refuses_mismatched_config(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _model())
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model"]["ngf"] = 8
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(format_version=99), "format_version"),
        (lambda c: c["model"].update(evil="x"), "model"),
        (lambda c: c["model"].update(image_size=100), "invalid"),
        (lambda c: c.update(attribute_names=["only_one"]), "directions"),
    ],
)
def test_refuses_malformed_config(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    save_checkpoint(tmp_path, _model())
    cfg = json.loads((tmp_path / "config.json").read_text())
    edit(cfg)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path)


def test_refuses_non_json_config(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _model())
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        load_checkpoint(tmp_path)
