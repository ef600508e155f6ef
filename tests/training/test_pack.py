"""Aligned sets packed to travel (a lent GPU machine has no ../shared) read back as they were."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models import load_checkpoint
from training.__main__ import main
from training.data import CelebAFormatError
from training.folders import PACKED_VAL_FRACTION, DataOptions, align_folder, read_pack, split_set

REPO = Path(__file__).resolve().parents[2]


def test_a_packed_set_is_the_training_split_as_aligned(celeba_half: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert main(["pack", "--data", str(celeba_half), "--image-size", "64", "--quality", "90",
                 "--cache-dir", str(cache), "--out", str(tmp_path / "pack")]) == 0  # fmt: skip
    packed_dir = tmp_path / "pack" / celeba_half.name
    s = align_folder(celeba_half, 64, cache_dir=cache)
    train, val = split_set(s, 0.1, 0)
    packed = align_folder(packed_dir, 64)  # a packed folder is a training set like any other
    assert packed.files == [s.files[i] for i in train] and len(val) > 0  # no held-out face travels
    assert np.array_equal(packed.valid, s.valid[train]) and np.array_equal(packed.labels, s.labels[train])
    assert np.array_equal(packed.known, s.known[train]) and np.array_equal(packed.identities, s.identities[train])
    assert packed.names == s.names
    err = np.abs(packed.images.astype(float) - s.images[train].astype(float)).mean()
    assert 0 < err < 4  # lossy WebP, close to the aligned faces
    # training commands take it as --data
    data = DataOptions(data=packed_dir).load_data(64)
    assert len(data.images) == len(train) and data.known is not None and data.known.all()
    # its held-out faces stayed behind: it is not split again, only a token share kept apart
    assert 0 < len(data.val_idx) <= max(2, 2 * PACKED_VAL_FRACTION * len(train)) < len(val)
    with pytest.raises(CelebAFormatError, match="packed at 64 px"):
        read_pack(packed_dir, 128)


def test_max_faces_chooses_among_the_training_faces(celeba_half: Path, tmp_path: Path) -> None:
    assert main(["pack", "--data", str(celeba_half), "--image-size", "64", "--max-faces", "10",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "pack")]) == 0  # fmt: skip
    s = align_folder(celeba_half, 64, cache_dir=tmp_path / "cache")
    train, _ = split_set(s, 0.1, 0)
    packed = align_folder(tmp_path / "pack" / celeba_half.name, 64)
    assert len(packed.files) == 10 and set(packed.files) <= {s.files[i] for i in train}


def test_the_gpu_script_trains_on_packed_faces_and_leaves_what_comes_back(celeba_half: Path, tmp_path: Path) -> None:
    """scripts/gpu-train.sh as the device runs it, on CPU for a few seconds: packed sets only (no
    ../shared there), and $OUT holding no more than the device tool brings back (8 files, 16 MiB)."""
    pack = tmp_path / ".gpu"
    assert main(["pack", "--data", str(celeba_half), "--image-size", "128", "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(pack / "faces")]) == 0  # fmt: skip
    for name in ("celeba-10k", "celeba-test-crops", "utkface-10k"):  # the three sets the recipe trains on
        (pack / "faces" / name).symlink_to(pack / "faces" / celeba_half.name)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PACK": str(pack), "OUT": str(out), "RUNS": str(tmp_path / "runs"), "PY": sys.executable,
           "WHEELS": "0", "DEVICE": "cpu", "MINUTES": "0.05", "BATCH": "4", "OMP_NUM_THREADS": "1"}  # fmt: skip
    subprocess.run(["bash", "scripts/gpu-train.sh"], cwd=REPO, env=env, check=True, timeout=900)
    files = {p.name for p in out.iterdir()}
    parts = sorted(out.glob("model.safetensors.part-*"))
    assert {"config.json", "samples.png", "loss.png", "train.log"} | {p.name for p in parts} == files - {
        "model.safetensors"
    }
    sizes = [p.stat().st_size for p in out.iterdir()]
    assert len(sizes) <= 8 and max(sizes) <= 16 * 2**20 and sum(sizes) <= 64 * 2**20
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_bytes((out / "config.json").read_bytes())
    (ck / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes() if not parts else
                                          b"".join(p.read_bytes() for p in parts))  # fmt: skip
    model = load_checkpoint(ck)
    assert model.cfg.family == "cgan" and model.cfg.image_size == 128 and model.D is not None
    assert "img_s" in (out / "train.log").read_text()
