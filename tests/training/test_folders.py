"""Any folder of photos is a training set: aligned by the service's own detector, labelled where
its labels say, unknown where they do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.geometry import CELEBA
from tests.conftest import SHARED, make_celeba
from training.data import CelebAFormatError, load_celeba
from training.folders import YOUNG_MAX_AGE, align_folder, load_folders
from worker.pipeline.faces import align, detect_faces


@pytest.fixture
def photo_folder(tmp_path: Path, photos: Path) -> Path:
    """Real photos (a portrait, a rotated and a shrunk copy of it, a face-less picture), with a
    UTKFace-style labels.csv."""
    root = tmp_path / "mine"
    (root / "images").mkdir(parents=True)
    astronaut = Image.open(photos / "astronaut.png").convert("RGB")
    astronaut.save(root / "images" / "a.jpg", quality=92)
    astronaut.rotate(15, expand=True, fillcolor=(90, 90, 90)).save(root / "images" / "b.png")
    astronaut.resize((256, 256)).save(root / "images" / "c.jpg", quality=92)
    Image.new("RGB", (200, 160), (30, 120, 200)).save(root / "images" / "sky.jpg")
    (root / "labels.csv").write_text(
        "file,age,gender,race,Smiling\na.jpg,25,1,0,1\nb.png,60,0,0,\nc.jpg,35,1,2,0\nsky.jpg,5,0,0,1\n"
    )
    return root


def test_a_folder_of_photos_is_aligned_like_an_upload(photo_folder: Path, tmp_path: Path, photos: Path) -> None:
    s = align_folder(photo_folder, 64, cache_dir=tmp_path / "cache", workers=1)
    assert s.files == ["images/a.jpg", "images/b.png", "images/c.jpg"] and s.failed == ["images/sky.jpg"]
    assert s.images.shape == (3, 64, 64, 3) and s.valid.shape == (3, 64, 64)
    # the same crop the service makes of the same upload
    photo = np.asarray(Image.open(photos / "astronaut.png").convert("RGB"))
    served = align(photo, detect_faces(photo)[0], 64, CELEBA).pixels.astype(float)
    assert np.abs(s.images[0].astype(float) - served).mean() < 6  # JPEG of the same photo
    # labels: age -> Young (<= 30 yes, >= 40 no, between unknown), gender 0 -> Male, empty -> unknown
    col = {n: k for k, n in enumerate(s.names)}
    assert s.known[:, col["Young"]].tolist() == [True, True, False]
    assert s.labels[:2, col["Young"]].tolist() == [1, 0] and YOUNG_MAX_AGE == 30
    assert s.labels[:, col["Male"]].tolist() == [0, 1, 0] and s.known[:, col["Male"]].all()
    assert s.known[:, col["Smiling"]].tolist() == [True, False, True]
    assert (s.identities == -1).all()


def test_the_aligned_set_is_cached(photo_folder: Path, tmp_path: Path) -> None:
    first = align_folder(photo_folder, 64, cache_dir=tmp_path / "cache", workers=1)
    (cache,) = (tmp_path / "cache").iterdir()
    mtime = cache.stat().st_mtime_ns
    again = align_folder(photo_folder, 64, cache_dir=tmp_path / "cache", workers=1)
    assert cache.stat().st_mtime_ns == mtime and np.array_equal(first.images, again.images)


def test_folders_combine_with_celeba_labels_unknown_where_a_set_has_none(
    photo_folder: Path, celeba_half: Path, tmp_path: Path
) -> None:
    data = load_folders([celeba_half, photo_folder], 64, cache_dir=tmp_path / "cache")
    assert data.known is not None and data.valid is not None and data.source is not None
    n_celeba = int((data.source == 0).sum())
    assert n_celeba > 40 and len(data.images) == n_celeba + 3
    names = data.attributes.names
    assert data.known[:n_celeba].all()  # CelebA has all 40
    blond = names.index("Blond_Hair")
    assert not data.known[n_celeba:, blond].any()  # the photos say nothing of hair colour
    signed = data.signed_labels(["Blond_Hair", "Male"])
    assert (signed[n_celeba:, 0] == 0).all() and set(signed[:n_celeba, 0].tolist()) <= {-1.0, 1.0}
    # each folder is split on its own: CelebA's held-out people are the same with or without the others
    alone = load_folders([celeba_half], 64, cache_dir=tmp_path / "cache")
    assert set(alone.val_idx.tolist()) == {i for i in data.val_idx.tolist() if i < n_celeba}
    assert not set(data.train_idx.tolist()) & set(data.val_idx.tolist())


def test_a_celeba_folder_holds_out_the_same_people_aligned_as_in_its_layout(tmp_path: Path) -> None:
    """`evaluate --data celeba-10k` judges the people CelebA's layout holds out; aligned with other
    folders, the same folder must hold out the same people, even where no face was found."""
    root = make_celeba(tmp_path / "celeba", n=60)
    for i in (1, 2, 7, 8, 13):  # people 0, 3 and half of 6: no face to find
        Image.new("RGB", (89, 109), (128, 128, 128)).save(root / "img_align_celeba" / f"{i:06d}.jpg")
    layout = load_celeba(root, 64, cache_dir=tmp_path / "cache")
    aligned = load_folders([root], 64, cache_dir=tmp_path / "cache")
    assert len(aligned.images) < len(layout.images)

    def held_out(data: object) -> set[int]:
        return set(data.identities[data.val_idx].tolist())  # type: ignore[attr-defined]

    assert held_out(aligned) and held_out(aligned) <= held_out(layout)
    found = set(aligned.identities.tolist())
    assert held_out(aligned) == held_out(layout) & found


def test_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CelebAFormatError, match="no photos"):
        align_folder(tmp_path / "empty", 64, cache_dir=tmp_path / "cache")


@pytest.mark.skipif(not (SHARED / "utkface-10k").is_dir(), reason="no ../shared/data/utkface-10k")
def test_utkface_tight_crops_are_found_and_marked_partial(tmp_path: Path) -> None:
    s = align_folder(SHARED / "utkface-10k", 64, cache_dir=tmp_path / "cache", max_images=24, workers=1)
    assert len(s.files) >= 22  # the service's detector finds nearly every face
    assert (~s.valid.all(axis=(1, 2))).mean() > 0.5  # hair and chin cut off: the mask says where
    assert s.known[:, s.names.index("Male")].all()
