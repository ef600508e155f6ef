"""The editor trains end to end on a tiny generated data set: guides fitted, a run that
snapshots, refuses to be overwritten, resumes where it stopped, and a checkpoint that loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from models.checkpoint import load_editor
from models.guides import load_guides
from training.__main__ import main
from training.editnet import draw_targets

ATTRS = "Male,Smiling,Blond_Hair,Black_Hair,Brown_Hair"
TINY = ["--image-size", "32", "--width", "8", "--skips", "1", "--batch", "4", "--device", "cpu", "--attributes", ATTRS]


@pytest.fixture(scope="module")
def guides(celeba_half: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("guides") / "g"
    cache = tmp_path_factory.mktemp("cache")
    args = ["--data", str(celeba_half), "--cache-dir", str(cache), "--attributes", ATTRS, "--image-size", "32"]
    assert main(["guides", *args, "--steps", "20", "--passes", "2", "--device", "cpu", "--out", str(out)]) == 0
    return out


def test_guides_load_frozen_and_report_held_out_accuracy(guides: Path) -> None:
    g = load_guides(guides)
    assert g.cfg.attributes == tuple(ATTRS.split(",")) and not any(p.requires_grad for p in g.parameters())
    assert g(torch.zeros(2, 3, 64, 64)).shape == (2, 2, 5)  # any input size; two members
    acc = json.loads((guides / "guides.json").read_text())["held_out_accuracy"]
    assert set(acc) == {"linear", "mlp"} and all(0 <= v <= 1 for v in acc["mlp"].values())


def test_a_folder_that_is_not_guides_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a guides folder"):
        load_guides(tmp_path)


def test_targets_flip_at_least_one_known_attribute_and_keep_one_hair_colour() -> None:
    names = tuple(ATTRS.split(","))
    gen = torch.Generator().manual_seed(0)
    y = torch.zeros(500, 5)
    y[:, 3] = 1  # everyone has black hair
    known = torch.ones(500, 5, dtype=torch.bool)
    known[:, 0] = False  # nobody's Male is known
    t = draw_targets(y, known, names, 1.0, gen)
    assert bool(((t != y).sum(1) >= 1).all())
    assert bool((t[:, 0] == y[:, 0]).all())  # an unknown label is never a target
    blond = t[:, 2] == 1
    assert int(blond.sum()) > 0 and bool((t[blond, 3] == 0).all())  # blond now: no longer black-haired


def test_the_editor_trains_snapshots_and_resumes(celeba_half: Path, guides: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    common = ["--data", str(celeba_half), "--cache-dir", str(tmp_path / "cache"), "--guides", str(guides), *TINY]
    args = [*common, "--out", str(run), "--snapshot-kimg", "0.008"]
    assert main(["editor", *args, "--kimg", "0.016"]) == 0  # 4 steps, a snapshot every 2
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["step-0000002", "step-0000004"]
    assert (run / "samples-000004.png").is_file() and (run / "loss.png").is_file()
    with pytest.raises(ValueError, match="--resume"):
        main(["editor", *args, "--kimg", "0.032"])
    assert main(["editor", *args, "--kimg", "0.032", "--resume"]) == 0
    with safe_open(str(run / "resume.safetensors"), "pt") as f:
        meta = f.metadata()
    assert int(meta["step"]) == 8 and len(json.loads(meta["history"])["rec"]) == 8
    model = load_editor(run / "checkpoint")
    assert model.cfg.image_size == 32 and model.D is not None
    assert model.meta["training"]["step"] == 8 and model.geometry.crop_box[2] - model.geometry.crop_box[0] == 178
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out, mask = model.G(x, torch.zeros(1, 5))
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
