"""End to end on the bundled editor (checkpoints/editor64, the card's v11): real photos in, each
edit confined to its attribute's place, strength 1 what calibration chose."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from models.checkpoint import EditorModel, load_editor
from models.editnet import attribute_regions

BUNDLED_EDITOR = Path(__file__).resolve().parents[2] / "checkpoints" / "editor64"


def _pixels(data: bytes | str) -> np.ndarray:
    raw = base64.b64decode(data.split(",", 1)[1]) if isinstance(data, str) else data
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(checkpoint=BUNDLED_EDITOR, redis_url=None))) as c:
        yield c


@pytest.fixture(scope="module")
def model() -> EditorModel:
    return load_editor(BUNDLED_EDITOR)


def test_the_bundled_editor_is_complete_calibrated_and_small(model: EditorModel) -> None:
    assert model.D is not None and model.cfg.regions and model.cfg.image_size == 64
    assert set(model.calibrations) == {"Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young"}
    assert all(c.same_person is not None and c.same_person >= 0.95 for c in model.calibrations.values())
    assert sum(f.stat().st_size for f in BUNDLED_EDITOR.iterdir()) < 8 * 2**20
    assert "CelebA" in model.meta["license"]


@pytest.mark.parametrize("attribute", ["Eyeglasses", "Smiling", "Blond_Hair"])
def test_each_edit_of_a_real_photo_stays_in_its_place(
    client: TestClient, model: EditorModel, photos: Path, attribute: str
) -> None:
    body = client.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())}).json()
    crop = _pixels(body["aligned"])
    r = client.post("/edit", params={"latent_id": body["latent_id"], "attribute": attribute, "paste": False})
    assert r.status_code == 200, r.text
    changed = np.abs(_pixels(r.content) - crop).max(2) > 0
    cfg = model.cfg
    k = cfg.attributes.index(attribute)
    places = attribute_regions(cfg.attributes, cfg.image_size, cfg.cheeks).numpy()[:, k, 0]  # added, removed
    assert changed.sum() > 20  # a visible edit
    assert not (changed & (places.max(0) == 0)).any()  # and nothing outside the attribute's place moved
