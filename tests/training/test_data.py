from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import CELEBA_ATTRIBUTES, SHARED
from training.data import CelebAFormatError, batches, load_celeba, read_attributes, to_model_input
from training.folders import DataOptions


@pytest.mark.parametrize("fixture", ["celeba_half", "celeba_full"])
def test_loader_reads_both_resolutions(fixture: str, request: pytest.FixtureRequest, cache_dir: Path) -> None:
    root = request.getfixturevalue(fixture)
    data = load_celeba(root, 64, cache_dir=cache_dir, workers=1)
    n = len(data.attributes.files)
    assert data.images.shape == (n, 64, 64, 3) and data.images.dtype == np.uint8
    assert data.attributes.names == CELEBA_ATTRIBUTES
    assert set(np.unique(data.attributes.labels)) <= {0, 1}
    assert len(data.train_idx) + len(data.val_idx) == n and len(np.intersect1d(data.train_idx, data.val_idx)) == 0
    # the crop keeps the face: the centre is skin-coloured (drawn as (220, 180, 150))
    centre = data.images[:, 36:44, 28:36].reshape(-1, 3).mean(0)
    assert np.allclose(centre, (220, 180, 150), atol=25)


def test_half_and_full_resolution_crop_the_same_face(tmp_path: Path, celeba_half: Path, celeba_full: Path) -> None:
    half = load_celeba(celeba_half, 64, cache_dir=tmp_path, workers=1).images[0].astype(float)
    full = load_celeba(celeba_full, 64, cache_dir=tmp_path, workers=1).images[0].astype(float)
    assert np.abs(half - full).mean() < 12  # same synthetic face (same seed), same crop


def test_split_is_disjoint_by_identity(celeba_half: Path, cache_dir: Path) -> None:
    data = load_celeba(celeba_half, 64, val_fraction=0.25, cache_dir=cache_dir, workers=1)
    assert data.identities is not None
    assert not set(data.identities[data.train_idx]) & set(data.identities[data.val_idx])


def test_a_runs_seed_does_not_change_who_is_held_out(celeba_half: Path, cache_dir: Path) -> None:
    """--seed is a run's randomness; the held-out people follow split_seed alone, so a run with another
    seed is judged (at the default split) only on faces it never trained on."""

    def val(seed: int = 0, split_seed: int = 0) -> set[int]:
        opts = DataOptions(data=celeba_half, cache_dir=cache_dir, seed=seed, split_seed=split_seed)
        return set(opts.load_data(64).val_idx.tolist())

    assert val(seed=1) == val(seed=0) == val(seed=7, split_seed=0)
    assert val(split_seed=1) != val(split_seed=0)


def test_cache_is_reused(celeba_half: Path, cache_dir: Path) -> None:
    first = load_celeba(celeba_half, 64, cache_dir=cache_dir, workers=1)
    files = list(cache_dir.glob("*.npy"))
    assert len(files) == 1
    for f in (celeba_half / "img_align_celeba").iterdir():
        f.touch()
    second = load_celeba(celeba_half, 64, cache_dir=cache_dir, workers=1)
    assert np.array_equal(first.images, second.images) and list(cache_dir.glob("*.npy")) == files


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "count line"),
        ("abc\nA B\nx.jpg 1 1\n", "image count"),
        ("2\nA B\n1.jpg 1 -1\n", "found 1 rows"),
        ("1\nA B\n1.jpg 1\n", "2 labels"),
        ("1\nA B\n1.jpg 1 0\n", "1 or -1"),
    ],
)
def test_malformed_attribute_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "list_attr_celeba.txt").write_text(content)
    with pytest.raises(CelebAFormatError, match=message):
        read_attributes(tmp_path / "list_attr_celeba.txt")


def test_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CelebAFormatError, match="img_align_celeba"):
        load_celeba(tmp_path)
    (tmp_path / "img_align_celeba").mkdir()
    with pytest.raises(CelebAFormatError, match="not found"):
        load_celeba(tmp_path)


def test_batches_are_channels_last_in_range(celeba_half: Path, cache_dir: Path) -> None:
    data = load_celeba(celeba_half, 64, cache_dir=cache_dir, workers=1)
    idx, x = next(batches(data.tensor(), data.train_idx, 8, np.random.default_rng(0)))
    assert set(idx) <= set(data.train_idx)
    t = to_model_input(x, torch.device("cpu"))
    assert t.shape == (8, 3, 64, 64) and t.is_contiguous(memory_format=torch.channels_last)
    assert t.min() >= -1 and t.max() <= 1


@pytest.mark.skipif(not (SHARED / "celeba-labels").is_dir(), reason="../shared/data/celeba-labels not present")
def test_official_attribute_file_parses() -> None:
    table = read_attributes(SHARED / "celeba-labels" / "list_attr_celeba.txt")
    assert len(table.files) == 202_599 and table.names == CELEBA_ATTRIBUTES
