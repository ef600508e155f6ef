"""End to end: gan -> encoder -> attributes -> classifier -> evaluate on a tiny data set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from models import load_checkpoint
from tests.conftest import SHARED
from training.__main__ import main
from training.calibration import AREAS

TINY = ["--ngf", "4", "--ndf", "4", "--nz", "8", "--batch", "8", "--device", "cpu"]


def test_pipeline_end_to_end(tmp_path: Path, celeba_half: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--data", str(celeba_half), "--cache-dir", str(tmp_path / "cache")]
    runs = tmp_path / "runs"
    assert main(["gan", *common, *TINY, "--kimg", "0.032", "--snapshot-every", "2", "--outdir", str(runs)]) == 0
    (gan_run,) = runs.iterdir()
    assert json.loads((gan_run / "options.json").read_text())["ngf"] == 4
    assert Image.open(gan_run / "loss.png").size[0] > 100
    assert (gan_run / "samples-000004.png").is_file()

    # resume continues from step 4 to step 8 in the same folder
    assert (
        main(
            [
                "gan",
                *common,
                *TINY,
                "--kimg",
                "0.064",
                "--snapshot-every",
                "2",
                "--outdir",
                str(runs),
                "--resume",
                str(gan_run),
            ]
        )
        == 0
    )
    assert (gan_run / "samples-000008.png").is_file() and len(list(runs.iterdir())) == 1
    assert load_checkpoint(gan_run / "checkpoint").meta["training"]["step"] == 8

    enc_args = ["--batch", "8", "--device", "cpu", "--kimg", "0.016", "--snapshot-every", "1", "--outdir", str(runs)]
    assert main(["encoder", *common, "--gan", str(gan_run / "checkpoint"), "--loss", "l2+ssim", *enc_args]) == 0
    enc_run = next(p for p in runs.iterdir() if "encoder" in p.name)
    assert (enc_run / "reconstructions-000002.png").is_file()

    clf = tmp_path / "clf"
    assert (
        main(
            [
                "classifier",
                *common,
                "--out",
                str(clf),
                "--width",
                "4",
                "--kimg",
                "0.016",
                "--batch",
                "8",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    ckpt = enc_run / "checkpoint"
    attr_args = ["--checkpoint", str(ckpt), "--device", "cpu", "--refine-steps", "2"]
    calibration = ["--classifier", str(clf), "--calibration-faces", "4", "--no-identity"]
    assert main(["attributes", *common, *attr_args, *calibration]) == 0
    model = load_checkpoint(ckpt)
    assert model.directions is not None and model.directions.shape == (40, 8)
    assert sum(model.meta["attributes"]["Smiling"][k] for k in ("with", "without")) > 0
    smiling = model.calibrations["Smiling"]
    assert model.directions[model.attribute_names.index("Smiling")].norm() == pytest.approx(smiling.length, rel=1e-3)
    assert smiling.area in AREAS and smiling.reached is not None and 0 <= smiling.reached <= 1
    assert model.meta["default_strength"] == 1.0
    assert model.meta["directions"]["conditional"]["Eyeglasses"] == ["Male", "Young"]

    report = tmp_path / "report.json"
    assert (
        main(
            [
                "evaluate",
                *common,
                "--checkpoint",
                str(ckpt),
                "--classifier",
                str(clf),
                "--out",
                str(report),
                "--opt-steps",
                "3",
                "--device",
                "cpu",
                "--photos",
                "1",
                "--photos-dir",
                str(SHARED / "photos"),
            ]
        )
        == 0
    )
    r = json.loads(report.read_text())
    assert set(r["edits"]) == {"Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young"}
    for e in r["edits"].values():
        assert 0 <= e["target_reached"] <= 1 and 0 <= e["target_reached_applied"] <= 1
        assert 0 <= e["others_unchanged_mean"] <= 1
    assert r["reconstruction"]["encoder"]["ssim"] <= 1
    assert "| Smiling |" in report.with_suffix(".md").read_text()
    assert (tmp_path / "report-examples.png").is_file()
    photos = r["whole_photos"]  # made from the held-out faces (one per kind, as many as there are) + shipped
    assert len(list((SHARED / "photos").iterdir())) < photos["photos"] <= 6 + len(list((SHARED / "photos").iterdir()))
    assert photos["faces_found_by_kind"]["shipped"] == "4/4"
    assert 0 <= photos["blends"]["change"]["Smiling"]["same_person"] <= 1
    by_kind = photos["change_by_kind"]
    found = {k: int(v.split("/")[0]) for k, v in photos["faces_found_by_kind"].items()}
    assert set(by_kind) == {k for k, n in found.items() if n}  # every kind with a face found, no other
    for key in ("same_person", "target_reached"):  # the kinds' shares, weighted by their faces, are the whole
        whole = sum(by_kind[k]["Smiling"][key] * found[k] for k in by_kind) / sum(found.values())
        assert whole == pytest.approx(photos["blends"]["change"]["Smiling"][key])
    assert "by kind of photo" in report.with_suffix(".md").read_text()
    assert Image.open(tmp_path / "report-photos.png").size[0] == 6 * 160


def test_bad_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gan", "--data", "x", "--image-size", "96"]) == 2
    assert "image_size" in capsys.readouterr().err
    assert main(["encoder", "--data", "x", "--gan", "y", "--loss", "vgg"]) == 2


def test_dry_run_prints_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gan", "--data", "somewhere", "--kimg", "5", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["kimg"] == 5.0


def test_an_optional_option_can_be_set_back_to_none(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["editor", "--data", "d", "--guides", "g", "--margin", "none", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["margin"] is None  # the editor's BCE (v2)
    assert main(["editor", "--data", "d", "--guides", "g", "--margin", "1.5", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["margin"] == 1.5


def test_bench_sets_each_step_against_the_machines_own_limit(celeba_half: Path, tmp_path: Path) -> None:
    from training.bench import BenchOptions, run_bench
    from training.runs import cpu_has_bf16

    opts = BenchOptions(
        data=celeba_half, ngf=4, ndf=4, batch=8, steps=2, warmup=1, max_images=48, cache_dir=tmp_path, device="cpu"
    )
    result = run_bench(opts)
    rows = result["steps"]
    assert isinstance(rows, dict)
    cgan = {"cgan fp32 (conv D)", "cgan fp32 (+ projected heads at 64 px)"}
    expected = {"reference (fp32, JPEG decode per step)", "ours fp32", *cgan} | (
        {"ours bf16"} if cpu_has_bf16() else set()
    )
    assert set(rows) == expected
    assert result["step_gflop"] > 0  # type: ignore[operator]
    for name, r in rows.items():
        assert r["img_s"] > 0
        if name not in cgan:  # FLOPs are counted for the DCGAN step only
            assert 0 < r["share_of_matmul_limit"] < 5


def test_curve_judges_every_snapshot_of_a_run_on_the_same_faces(celeba_half: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    tiny = ["--ngf", "4", "--ndf", "4", "--nz", "8", "--batch", "8", "--device", "cpu", "--kimg", "0.032"]
    common = ["--data", str(celeba_half), "--cache-dir", str(tmp_path / "cache")]
    assert main(["gan", *common, *tiny, "--snapshot-every", "2", "--outdir", str(out)]) == 0
    (run,) = out.iterdir()
    assert len(list((run / "snapshots").glob("G-*.safetensors"))) == 2
    plot = tmp_path / "curve.png"
    assert main(["curve", *common, "--runs", str(run), "--faces", "16", "--out", str(plot), "--device", "cpu"]) == 0
    figures = json.loads(plot.with_suffix(".json").read_text())
    points = figures["runs"][run.name]["points"]
    assert len(points) == 2 and points[0][0] < points[1][0]  # CPU minutes grow
    assert all(fd > 0 for _, fd in points)
    assert plot.stat().st_size > 1000


def test_precision_choice() -> None:
    import torch

    from training.runs import autocast_for

    cpu = torch.device("cpu")
    assert not autocast_for(cpu, "fp32")._enabled
    bf16 = autocast_for(cpu, "bf16")
    assert bf16._enabled and bf16.fast_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        autocast_for(cpu, "fp8")
