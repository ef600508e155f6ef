"""The engine merges concurrent requests into one forward pass without mixing up answers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from models import load_checkpoint
from worker.pipeline.engine import Engine


def test_batched_answers_match_one_by_one(tiny_checkpoint: Path) -> None:
    model = load_checkpoint(tiny_checkpoint)
    batched = Engine(model, batch_max=8, batch_wait_ms=20)
    direct = Engine(load_checkpoint(tiny_checkpoint), batch_wait_ms=0)
    calls = []
    forward = batched._batcher.forward
    batched._batcher.forward = lambda kind, data: calls.append(len(data[0])) or forward(kind, data)
    z = torch.randn(16, model.cfg.nz)
    faces = (np.random.default_rng(0).random((16, 64, 64, 3)) * 255).astype(np.uint8)
    with ThreadPoolExecutor(16) as pool:
        rendered = list(pool.map(lambda i: batched.render(z[i : i + 1]), range(16)))
        encoded = list(pool.map(lambda i: batched.encode(faces[i : i + 1]), range(16)))
    for i in range(16):
        assert np.abs(rendered[i].astype(int) - direct.render(z[i : i + 1]).astype(int)).max() <= 1
        assert torch.allclose(encoded[i], direct.encode(faces[i : i + 1]), atol=1e-4)
    assert max(calls) > 1 and len(calls) < 32  # some requests really shared a forward pass
    batched.close()


def test_errors_reach_every_caller(tiny_checkpoint: Path) -> None:
    engine = Engine(load_checkpoint(tiny_checkpoint), batch_wait_ms=5)
    try:
        engine.render(torch.randn(1, 3))  # wrong latent size
    except RuntimeError:
        pass
    else:
        raise AssertionError("a bad request must raise in its caller")
    assert engine.render(torch.randn(1, engine.cfg.nz)).shape == (1, 64, 64, 3)  # still serving
    engine.close()


def test_the_editor_sends_the_scale_calibrated_for_adding_or_for_taking_away(tmp_path: Path) -> None:
    from models.checkpoint import EditorCalibration, EditorModel, load_editor, save_editor
    from models.editnet import EditNet, EditorConfig
    from worker.pipeline.editnet import EditNetEngine

    cfg = EditorConfig(("Male", "Smiling"), image_size=32, width=8, max_width=32, skips=1)
    model = EditorModel(cfg, EditNet(cfg))
    model.calibrations = {"Smiling": EditorCalibration(2.0, 0.9, 0.97, remove_scale=3.0),
                          "Male": EditorCalibration(1.5)}  # fmt: skip
    engine = EditNetEngine(load_editor(save_editor(tmp_path / "ed", model)))
    try:
        assert engine.difference([("Smiling", 0.5)]).tolist() == [0.0, 1.0]
        assert engine.difference([("Smiling", -1.0), ("Male", -1.0)]).tolist() == [-1.5, -3.0]
    finally:
        engine.close()


def test_a_dim_photo_is_edited_in_the_light_the_editor_knows_and_keeps_its_own(tiny_editor: Path, photos: Path) -> None:
    from models.checkpoint import load_editor
    from worker.pipeline.editnet import EditNetEngine, exposure_gain, prepare_photo
    from worker.pipeline.images import decode_photo

    engine = EditNetEngine(load_editor(tiny_editor), batch_wait_ms=0)
    try:
        bright = prepare_photo(engine, decode_photo((photos / "astronaut.png").read_bytes(), 10**7)).aligned
        assert bright is not None
        crop = bright.pixels
        dim = (crop * 0.4).round().astype(np.uint8)  # the same face at 0.4 of its light
        assert exposure_gain(crop[None])[0] == 1.0  # a face exposed as CelebA's is read as it is
        gain = float(exposure_gain(dim[None])[0])
        assert 1.5 < gain <= 3.0
        d = engine.difference([("Smiling", 3.0)])[None]
        assert np.array_equal(engine.edit(crop[None], d)[0], engine.edit(crop[None], d)[0])
        edited_dim = engine.edit(dim[None], d)[0][0].astype(np.float32)
        lifted = (dim * gain).round().clip(0, 255).astype(np.uint8)
        edited_lifted = engine.edit(lifted[None], d)[0][0].astype(np.float32)
        change_lifted = edited_lifted - lifted
        acts = np.abs(change_lifted).max(2) > 0  # where the editor changes the lifted face (its mouth)
        assert acts.sum() > 20 and np.abs(change_lifted[acts]).mean() > 3
        # the dim face gets the lifted face's change there, brought back down to its own light
        change_dim = edited_dim - dim
        assert np.abs(change_dim[acts] * gain - change_lifted[acts]).mean() < 0.25 * np.abs(change_lifted[acts]).mean()
        assert np.abs(change_dim[~acts]).max() <= 1  # and nothing where it does not act
    finally:
        engine.close()


def test_what_is_lifted_comes_back_down_and_a_brushed_target_is_lifted_with_its_face() -> None:
    from worker.pipeline.editnet import bring_down, exposure_gain, lift
    from worker.pipeline.faces import Aligned
    from worker.service.optimized import _target

    rng = np.random.default_rng(0)
    crops = (rng.random((3, 16, 16, 3)) * 100).astype(np.uint8)  # dim: brightest 1% below 100
    gain = exposure_gain(crops)
    assert (gain > 1.5).all()
    lifted = lift(crops, gain)
    assert np.array_equal(bring_down(crops, lifted, lifted, gain), crops)  # no change: the photo itself
    brighter = np.minimum(lifted.astype(int) + 30, 255).astype(np.uint8)
    down = bring_down(crops, lifted, brighter, gain).astype(int) - crops
    assert np.abs(down - 30 / gain[:, None, None, None]).max() <= 1  # a change, in the crop's own light
    aligned = Aligned(crops[0], np.ones((16, 16), bool), np.eye(2, 3))
    target, _ = _target(aligned, None, float(gain[0]))
    assert np.abs((target[0].permute(1, 2, 0).numpy() + 1) * 127.5 - lifted[0]).max() < 0.01


def test_the_light_is_read_on_the_photos_own_pixels_not_on_the_fill_beyond_its_edge() -> None:
    from worker.pipeline.editnet import EXPOSURE_TARGET, exposure_gain

    crop = np.full((1, 32, 32, 3), 255, np.uint8)  # a bright fill beyond the photo's edge...
    crop[0, :, :16] = 80  # ...beside a dim photo
    valid = np.zeros((1, 32, 32), bool)
    valid[0, :, :16] = True
    assert exposure_gain(crop)[0] == 1.0
    assert abs(exposure_gain(crop, valid)[0] - EXPOSURE_TARGET / 80) < 1e-4
