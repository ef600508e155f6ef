"""The edit contract: calibrations parsed and checked at load, edits summed into one offset and area."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.areas import HEAD, Area
from models.checkpoint import CheckpointError, FaceModel, load_checkpoint, save_checkpoint
from models.edits import Calibration, latent_edit
from models.networks import ModelConfig

EYES, MOUTH = Area(regions=("eyes",)), Area(focus=(0.1, 0.35), regions=("mouth",))


def _model() -> FaceModel:
    model = FaceModel.new(ModelConfig(nz=10, ngf=4, ndf=4, image_size=64))
    model.attribute_names, model.directions = ["Smiling", "Male", "Eyeglasses"], torch.randn(3, 10)
    return model


def test_a_step_is_linear_on_each_side_with_its_calibrated_length() -> None:
    model = _model()
    v = model.directions[0]  # type: ignore[index]
    smiling = model.attribute("Smiling")
    assert torch.equal(smiling.offset(torch.zeros(3)), torch.zeros(3, 10))
    assert torch.allclose(smiling.offset(torch.tensor([1.0, -0.5])), torch.stack([v, -0.5 * v]))  # uncalibrated
    model.calibrations["Smiling"] = Calibration(length=2.0, remove_length=3.0)  # removing a smile: a longer step
    steps = model.attribute("Smiling").offset(torch.tensor([2.0, 1.0, -1.0, -2.0]))
    assert torch.allclose(steps, torch.stack([2 * v, v, -1.5 * v, -3 * v]))
    with pytest.raises(KeyError):
        model.attribute("Bald")


def test_edits_sum_into_one_offset_acting_where_each_nonzero_edit_acts() -> None:
    model = _model()
    model.calibrations = {"Smiling": Calibration(2.0, 2.0, MOUTH), "Eyeglasses": Calibration(3.0, 4.0, EYES)}
    d = model.directions
    assert d is not None
    smile, male, glasses = (model.attribute(n) for n in ("Smiling", "Male", "Eyeglasses"))
    change = latent_edit([(smile, 1.0), (glasses, -1.0), (male, 0.0)], 10)
    assert torch.allclose(change.offset, d[0] - 4 / 3 * d[2])
    assert change.area.regions == ("eyes", "mouth") and change.area.focus == (0.0, 0.0)  # the looser focus
    only_zero = latent_edit([(smile, 0.0)], 10)
    assert torch.equal(only_zero.offset, torch.zeros(10)) and only_zero.area == HEAD


def test_calibrations_travel_through_a_checkpoint_as_the_same_type(tmp_path: Path) -> None:
    model = _model()
    model.meta["directions"] = {"calibration": {"reach": 0.85, "faces": 128}}
    model.calibrations = {
        "Smiling": Calibration(2.0, 3.0, MOUTH, reached=0.9, same_person=0.97, same_person_photos={"length": 0.96})
    }
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m", model))
    assert loaded.calibrations == model.calibrations
    assert loaded.meta["directions"]["calibration"] == {"reach": 0.85, "faces": 128}  # the summary stays
    assert loaded.attribute("Male").calibration == Calibration.assumed(loaded.directions[1])  # type: ignore[index]


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"remove_length": 3.0}, "length"),
        ({"length": -1.0}, "length"),
        ({"length": "long"}, "could not convert"),
        ({"length": 2.0, "reached": 1.5}, "shares"),
        ({"length": 2.0, "focus": [0.9, 0.1]}, "focus"),
        ({"length": 2.0, "regions": ["nose"]}, "regions"),
        ({"length": 2.0, "same_person_photos": {"sideways": 0.9}}, "per side"),
    ],
)
def test_a_malformed_calibration_is_refused_when_the_checkpoint_loads(
    tmp_path: Path, entry: dict[str, object], why: str
) -> None:
    path = save_checkpoint(tmp_path / "m", _model())
    config = json.loads((path / "config.json").read_text())
    config["directions"] = {"calibration": {"attributes": {"Smiling": entry}}}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"calibration of Smiling is invalid: .*{why}"):
        load_checkpoint(path)


def test_a_calibration_of_an_attribute_without_a_direction_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m", _model())
    config = json.loads((path / "config.json").read_text())
    config["directions"] = {"calibration": {"attributes": {"Bald": {"length": 2.0}}}}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="without a direction: \\['Bald'\\]"):
        load_checkpoint(path)
