"""The image-to-image editor's network: shapes, the exact identity outside its mask, conditioning,
and its checkpoint format."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import CheckpointError, EditorModel, family_of, load_editor, save_editor
from models.editnet import (
    HEAD_GEOMETRY,
    EditAsGenerator,
    EditNet,
    EditorConfig,
    EditorDiscriminator,
    attribute_regions,
    flops_per_image,
)

TINY = EditorConfig(("Male", "Smiling", "Blond_Hair"), image_size=32, width=8, max_width=32, skips=1, d_width=8)


def test_the_config_refuses_what_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="power of two"):
        EditorConfig(image_size=48)
    with pytest.raises(ValueError, match="skips"):
        EditorConfig(image_size=32, skips=3)
    with pytest.raises(ValueError, match="distinct"):
        EditorConfig(("Male", "Male"))
    with pytest.raises(ValueError, match="d_patch"):
        EditorConfig(image_size=16, skips=1, d_patch=True)


@pytest.mark.parametrize("skips", [0, 1, 2])
def test_edits_have_the_face_shape_and_depend_on_the_difference_vector(skips: int) -> None:
    torch.manual_seed(0)
    cfg = EditorConfig(TINY.attributes, image_size=32, width=8, max_width=32, skips=skips)
    net = EditNet(cfg)
    torch.nn.init.normal_(net.head[-1].weight, std=0.1)  # a trained head, not the identity-like start
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out, mask = net(x, torch.zeros(2, 3))
        other, _ = net(x, torch.tensor([[1.0, 0, 0], [0, -1.0, 0]]))
    assert out.shape == x.shape and mask.shape == (2, 1, 32, 32)
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1
    assert not torch.allclose(out, other, atol=1e-4)


def test_where_the_mask_is_zero_the_answer_is_the_input_bit_for_bit() -> None:
    torch.manual_seed(0)
    net = EditNet(TINY)
    with torch.no_grad():
        net.head[-1].bias[3] = -8.0  # the mask's logit far below its dead zone
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out, mask = net(x, torch.ones(2, 3))
    assert bool((mask == 0).all())
    assert torch.equal(out, x)


def test_strength_zero_is_the_input_and_a_smaller_strength_a_smaller_mask() -> None:
    torch.manual_seed(0)
    net = EditNet(TINY)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    d = torch.tensor([[1.0, 0, 0], [0, 0, -1.0]])
    with torch.no_grad():
        assert torch.equal(net(x, torch.zeros(2, 3))[0], x)
        full, half = net(x, d)[1], net(x, d / 2)[1]
    assert float(full.mean()) > 0 and float(half.mean()) < float(full.mean())


def test_with_regions_an_attribute_moves_nothing_outside_its_place() -> None:
    torch.manual_seed(0)
    cfg = EditorConfig(("Eyeglasses", "Blond_Hair", "Male"), image_size=32, width=8, max_width=32, skips=1,
                       regions=True)  # fmt: skip
    net = EditNet(cfg)
    with torch.no_grad():
        net.head[-1].bias[3] = 8.0  # the network opens its mask everywhere
    places = attribute_regions(cfg.attributes, 32)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for k in range(3):
            d = torch.zeros(1, 3)
            d[0, k] = 1.0
            out, mask = net(x, d)
            outside = places[0, k, 0] == 0
            assert torch.equal(out[0][:, outside], x[0][:, outside]) and float(mask[0, 0][outside].max()) == 0
            assert float(mask.max()) > 0.9  # inside, the network's own mask
            assert torch.equal(out[0, :, 0], x[0, :, 0]) and torch.equal(out[0, :, :, 0], x[0, :, :, 0])  # border
    (glasses_on, hair, head), glasses_off = places[0, :, 0], places[1, 0, 0]
    pts = HEAD_GEOMETRY.template(64)[:2]
    e = float(np.linalg.norm(pts[1] - pts[0]))
    frames = attribute_regions(cfg.attributes, 64)[0, 0, 0]
    for p in pts:
        # glasses are added as frames: on the rims, not over the eyes nor the lenses around them
        # (taking them off may repaint the eyes); blond stays off the face
        (px, py), (lens_x, _), (rim_x, _) = (np.floor(p + (dx, 0)).astype(int) for dx in (0, 0.22 * e, 0.42 * e))
        assert frames[py, px] == 0 and frames[py, lens_x] == 0 and frames[py, rim_x] > 0.5
        x32, y32 = (p / 2).astype(int)
        assert glasses_off[y32, x32] > 0.9 and hair[y32, x32] == 0 and head[y32, x32] == 1
    assert float(glasses_on.sum()) < 0.5 * float(glasses_off.sum())  # frames, not a band
    assert float(glasses_off.sum()) < float(hair.sum()) < float(head.sum())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        on, off = net(x, torch.tensor([[1.0, 0, 0]]))[0], net(x, torch.tensor([[-1.0, 0, 0]]))[0]
    eyes = places[0, 0, 0] < places[1, 0, 0]
    assert torch.equal(on[0][:, eyes & (places[0, 0, 0] == 0)], x[0][:, eyes & (places[0, 0, 0] == 0)])
    assert not torch.equal(off[0][:, eyes], x[0][:, eyes])


def test_with_cheeks_a_smile_may_act_on_the_cheeks_and_chin_but_not_the_eyes() -> None:
    names = ("Smiling", "Mustache")
    mouth_only, cheeks = attribute_regions(names, 64), attribute_regions(names, 64, cheeks=True)
    pts = HEAD_GEOMETRY.template(64)
    e = float(np.linalg.norm(pts[1] - pts[0]))
    nose, mouth = pts[2], (pts[3] + pts[4]) / 2
    for places in (mouth_only, cheeks):
        assert places[0, 0, 0][tuple(np.floor(mouth[::-1]).astype(int))] == 1  # the mouth, both ways
        for eye in pts[:2]:
            assert float(places[:, 0, 0][:, int(eye[1]), int(eye[0])].max()) == 0
    for side in (-1, 1):  # the cheek beside the nose, added and removed, only with cheeks
        x, y = np.floor(nose + (side * 0.6 * e, -0.1 * e)).astype(int)
        assert float(mouth_only[:, 0, 0, y, x].max()) < 0.05 and float(cheeks[:, 0, 0, y, x].min()) > 0.9
    assert torch.equal(cheeks[:, 1], mouth_only[:, 1])  # a moustache stays at the mouth
    with_cheeks = EditNet(EditorConfig(names, image_size=64, regions=True, cheeks=True))
    assert torch.equal(with_cheeks.get_buffer("places"), cheeks.flatten(0, 1))


def test_the_64px_editor_costs_at_most_2_gflop_per_face() -> None:
    # the slider's budget on the CPU (issue: the editor's forward pass at 64 px <= 2 GFLOP)
    assert flops_per_image(EditorConfig()) <= 2e9
    assert flops_per_image(EditorConfig(image_size=128, width=64, skips=3)) > 4 * flops_per_image(EditorConfig())


def test_a_residual_editor_changes_the_input_s_own_colour_and_keeps_its_detail() -> None:
    torch.manual_seed(0)
    cfg = EditorConfig(("Male", "Smiling", "Blond_Hair"), image_size=32, width=8, max_width=32, skips=1, residual=True)
    net = EditNet(cfg).eval()
    x = torch.rand(2, 3, 32, 32) * 1.9 - 0.95
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    with torch.no_grad():
        color, _ = net.draw(x, d)
        assert torch.allclose(color, x, atol=1e-5)  # untrained: the colour is the input itself
        net.head[3].bias[:3] = torch.tensor([0.6, 0.3, -0.4])  # a change of colour everywhere
        color, _ = net.draw(x, d)
        drawn, _ = EditNet(replace(cfg, residual=False)).eval().draw(x, d)
    assert (color - x).abs().mean() > 0.1
    # every pixel moved the same way: the order of the face's pixels (its detail) is the input's
    assert torch.equal(color.flatten(2).argsort(-1), x.flatten(2).argsort(-1))
    assert not torch.equal(drawn.flatten(2).argsort(-1), x.flatten(2).argsort(-1))


def test_a_neutral_attribute_changes_light_alone_and_the_others_keep_their_hue() -> None:
    torch.manual_seed(0)
    names = ("Male", "Eyeglasses", "Blond_Hair")
    cfg = EditorConfig(names, image_size=32, width=8, max_width=32, skips=1, regions=True, residual=True,
                       neutral=("Eyeglasses",))  # fmt: skip
    with pytest.raises(ValueError, match="residual"):
        replace(cfg, residual=False)
    with pytest.raises(ValueError, match="Smiling"):
        replace(cfg, neutral=("Smiling",))
    # an old config's flag: every attribute but the colours; a list (config.json) is a tuple
    assert replace(cfg, neutral=True).neutral == ("Male", "Eyeglasses")  # type: ignore[arg-type]
    assert replace(cfg, neutral=False).neutral == ()  # type: ignore[arg-type]
    assert replace(cfg, neutral=["Eyeglasses"]) == cfg  # type: ignore[arg-type]
    x = torch.rand(3, 3, 32, 32) * 1.9 - 0.95
    head, hair = attribute_regions(names, 32)[0, [0, 2], 0]  # where Male and blond may act

    def hue_of_each_edit(neutral: tuple[str, ...]) -> torch.Tensor:
        torch.manual_seed(0)
        net = EditNet(replace(cfg, neutral=neutral)).eval()
        with torch.no_grad():
            net.head[3].bias[:3] = torch.tensor([0.6, 0.3, -0.4])  # a warmer colour everywhere
            color, _ = net.draw(x, torch.eye(3))
        change = torch.atanh(color.clamp(-0.9999, 0.9999)) - torch.atanh(x.clamp(-0.995, 0.995))
        assert float(change.abs().mean((1, 2, 3)).min()) > 0.1  # every edit changes the colour
        return (change - change.mean(1, keepdim=True)).abs().amax(1)  # (3, S, S): how unequal the channels moved

    hue = hue_of_each_edit(("Eyeglasses",))  # glasses alone: light; Male and blond keep their hue
    assert float(hue[1].max()) < 1e-4
    assert float(hue[0][head == 1].min()) > 0.3 and float(hue[2][hair == 1].min()) > 0.3
    hue = hue_of_each_edit(("Male", "Eyeglasses"))  # all but the colour: blond's hue on the hair alone
    assert float(hue[:2].max()) < 1e-4
    assert float(hue[2][hair == 1].min()) > 0.3 and float(hue[2][hair == 0].max()) < 1e-4


def test_a_patch_logit_judges_its_own_neighbourhood_and_not_the_far_corner() -> None:
    torch.manual_seed(0)
    cfg = EditorConfig(("Male", "Smiling", "Blond_Hair"), image_size=32, width=8, max_width=32, skips=1, d_width=8,
                       d_patch=True)  # fmt: skip
    D = EditorDiscriminator(cfg).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    blob = x.clone()
    blob[..., 24:, 24:] = 0.8  # a flat blob in the bottom-right corner
    with torch.no_grad():
        (real, classes, patches), (_, _, patches_b) = D.all(x), D.all(blob)
        assert torch.equal(real, D(x)) and classes.shape == (1, 3)
    assert patches is not None and patches_b is not None and patches.shape == (1, 4, 4)
    moved = (patches_b - patches).abs()[0]
    assert moved[3, 3] > 0 and torch.equal(patches_b[0, :2, :2], patches[0, :2, :2])
    assert EditorDiscriminator(TINY).all(x)[2] is None  # without d_patch, no patch head


def test_an_editor_checkpoint_round_trips_and_says_its_family(tmp_path: Path) -> None:
    torch.manual_seed(1)
    cfg = replace(TINY, residual=True, neutral=("Smiling",))  # a tuple in the config comes back a tuple
    model = EditorModel(cfg, EditNet(cfg), EditorDiscriminator(cfg), meta={"training": {"kimg": 1.0}})
    save_editor(tmp_path / "ed", model)
    assert family_of(tmp_path / "ed") == "editnet"
    back = load_editor(tmp_path / "ed")
    assert back.cfg == cfg and back.D is not None and back.meta["training"] == {"kimg": 1.0}
    x, d = torch.rand(1, 3, 32, 32) * 2 - 1, torch.tensor([[1.0, 0.0, -1.0]])
    with torch.no_grad():
        assert torch.equal(model.G.eval()(x, d)[0], back.G(x, d)[0])
    assert load_editor(tmp_path / "ed", parts=("G",)).D is None


def test_a_dcgan_checkpoint_is_not_taken_for_an_editor(tiny_checkpoint: Path) -> None:
    assert family_of(tiny_checkpoint) == "dcgan"
    with pytest.raises(CheckpointError, match="not an editor"):
        load_editor(tiny_checkpoint)


def test_the_optimiser_sees_the_edit_as_a_latent_it_can_move() -> None:
    torch.manual_seed(0)
    net = EditNet(TINY).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    d = torch.tensor([[1.0, 0.0, -0.5]])
    edit = EditAsGenerator(net, x, grid=4)
    z = edit.start(d, gain=0.99999).requires_grad_(True)
    assert z.shape == (1, 3 + 16)
    out = edit(z)
    assert torch.allclose(out, net(x, d)[0], atol=1e-4)  # a full gain is the network's own edit
    out.sum().backward()
    assert z.grad is not None and bool((z.grad[:, :3] != 0).any()) and bool((z.grad[:, 3:] != 0).any())
    with torch.no_grad():
        closed = edit(edit.start(d, gain=1e-6))
    assert torch.allclose(closed, x, atol=1e-4)  # a closed gain keeps the face
