"""End to end on the bundled checkpoint: real photos in, recognisable reconstructions and edits out."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from models import load_checkpoint
from models.losses import l2
from models.pixels import from_uint8
from tests.conftest import wait_for_job

BUNDLED = Path(__file__).resolve().parents[2] / "checkpoints" / "celeba64"


def _tensor(data_url_or_png: str | bytes) -> torch.Tensor:
    raw = base64.b64decode(data_url_or_png.split(",", 1)[1]) if isinstance(data_url_or_png, str) else data_url_or_png
    arr = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"), dtype=np.float32)
    return from_uint8(torch.from_numpy(arr)[None])


@pytest.fixture(scope="module")
def bundled() -> TestClient:
    with TestClient(create_app(Settings(checkpoint=BUNDLED))) as client:
        yield client  # type: ignore[misc]


def test_bundled_checkpoint_is_complete_and_small() -> None:
    model = load_checkpoint(BUNDLED)
    assert model.E is not None and model.D is not None and model.directions is not None
    assert len(model.attribute_names) == 40
    assert sum(f.stat().st_size for f in BUNDLED.iterdir()) < 40 * 2**20
    assert "CelebA" in model.meta["license"]


def test_reconstructions_resemble_their_own_face(bundled: TestClient, photos: Path) -> None:
    faces = {}
    for name in ("astronaut.png", "messi5.jpg", "group.jpg"):
        r = bundled.post("/encode", files={"file": (name, (photos / name).read_bytes())})
        assert r.status_code == 200, r.text
        faces[name] = (_tensor(r.json()["aligned"]), _tensor(r.json()["reconstruction"]), r.json()["latent_id"])
    for name, (aligned, rec, _) in faces.items():
        own = l2(rec, aligned).item()
        others = [l2(rec, other[0]).item() for n, other in faces.items() if n != name]
        assert own < min(others), (name, own, others)  # closer to its own face than to the others


def test_edits_change_the_face_smoothly(bundled: TestClient, photos: Path) -> None:
    lid = bundled.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())}).json()[
        "latent_id"
    ]

    def edit(strength: float) -> torch.Tensor:
        r = bundled.post("/edit", params={"latent_id": lid, "attribute": "Smiling", "strength": strength})
        return _tensor(r.content)

    base, small, large = edit(0), edit(0.5), edit(2.0)
    assert 0 < l2(small, base).item() < l2(large, base).item()  # further the stronger the edit


def test_an_edit_leaves_what_lies_outside_its_area(bundled: TestClient, photos: Path) -> None:
    attrs = {a["name"]: a for a in bundled.get("/attributes").json()["attributes"]}
    assert all(0 <= attrs[n]["reached"] <= 1 and 0 <= attrs[n]["same_person"] <= 1 for n in ("Smiling", "Male"))
    inner = sorted(n for n, a in attrs.items() if not {"head", "hair"} & set(a["regions"]))
    assert inner, "the calibration confined no edit to the face, eyes or mouth"
    data = (photos / "astronaut.png").read_bytes()
    r = bundled.post("/encode", files={"file": ("a.png", data)}).json()
    x, y, w, h = r["face_box"]
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    for name in inner:
        out = bundled.post("/edit", params={"latent_id": r["latent_id"], "attribute": name, "strength": 2})
        edited = np.asarray(Image.open(io.BytesIO(out.content)).convert("RGB")).astype(int)  # PNG in, PNG out
        moved = np.abs(edited - original).max(2)
        assert moved[y : y + h, x : x + w].max() > 8, name  # the face changed
        above = moved[max(0, y - h // 3) : y - h // 10, x : x + w]  # hair and background above the face
        assert above.max() == 0, name


def test_an_optimised_edit_leaves_what_lies_outside_its_area(bundled: TestClient, photos: Path) -> None:
    """The job composites with the attribute's calibrated area, as /edit does, not the whole head."""
    attrs = {a["name"]: a for a in bundled.get("/attributes").json()["attributes"]}
    name = next(n for n, a in sorted(attrs.items()) if not {"head", "hair"} & set(a["regions"]))
    data = (photos / "astronaut.png").read_bytes()
    r = bundled.post("/encode", files={"file": ("a.png", data)}).json()
    x, y, w, h = r["face_box"]
    job = bundled.post(
        "/edits/optimized",
        json={"latent_id": r["latent_id"], "edits": [{"attribute": name, "strength": 2}], "steps": 5},
    )
    assert job.status_code == 202, job.text
    assert wait_for_job(bundled, job.json()["job_id"])["status"] == "succeeded"
    out = bundled.get(f"/jobs/{job.json()['job_id']}/result")
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    moved = np.abs(np.asarray(Image.open(io.BytesIO(out.content)).convert("RGB")).astype(int) - original).max(2)
    assert moved[y : y + h, x : x + w].max() > 8  # the face changed
    assert moved[max(0, y - h // 3) : y - h // 10, x : x + w].max() == 0  # hair and background above it did not
