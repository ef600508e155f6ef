"""The service on the image-to-image editor: every route answers, as the latent model's do where
they have a meaning and with a clear 422 naming the family where they do not."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from tests.conftest import wait_for_job


@pytest.fixture(scope="module")
def client(tiny_editor: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(checkpoint=tiny_editor, redis_url=None))) as c:
        yield c


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def _encode(client: TestClient, photo: Path) -> dict[str, object]:
    r = client.post("/encode", files={"file": (photo.name, photo.read_bytes())})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_attributes_say_the_family_and_that_there_is_no_latent_space(client: TestClient) -> None:
    body = client.get("/attributes").json()
    assert body["family"] == "editnet" and body["latent"] is False
    names = [a["name"] for a in body["attributes"]]
    assert names[:2] == ["Smiling", "Male"] and "Blond_Hair" in names  # most useful first
    smiling = body["attributes"][0]
    assert smiling["reached"] == 0.9 and smiling["same_person"] == 0.97 and smiling["regions"] == ["mouth"]
    assert next(a for a in body["attributes"] if a["name"] == "Male")["regions"] == ["head"]


def test_an_encoded_photo_is_its_head_crop_with_no_latent(client: TestClient, photos: Path) -> None:
    body = _encode(client, photos / "astronaut.png")
    assert body["z"] == [] and body["faces_found"] == 1
    assert body["inversion"]["refined"] is False and body["inversion"]["steps"] == 0  # nothing to invert
    assert str(body["aligned"]).startswith("data:image/png;base64,")


def test_an_edit_changes_the_face_and_nothing_outside_it(client: TestClient, photos: Path) -> None:
    photo = photos / "astronaut.png"
    latent_id = _encode(client, photo)["latent_id"]
    before = _pixels(photo.read_bytes())
    r = client.post("/edit", params={"latent_id": latent_id, "attribute": "Smiling", "strength": 1})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    after = _pixels(r.content)
    assert after.shape == before.shape
    changed = np.abs(after - before).max(2) > 0
    assert changed.any()
    tile = client.post("/edit", params={"latent_id": latent_id, "attribute": "Smiling", "strength": 1, "tile": True})
    x0, y0, x1, y1 = (int(v) for v in tile.headers["x-tile-box"].split(","))
    outside = changed.copy()
    outside[y0:y1, x0:x1] = False
    assert not outside.any()  # the photo keeps its own pixels beyond the head's rectangle
    assert np.array_equal(_pixels(tile.content), after[y0:y1, x0:x1])


def test_strength_zero_gives_the_photo_back_and_strength_scales_the_change(client: TestClient, photos: Path) -> None:
    photo = photos / "astronaut.png"
    latent_id = _encode(client, photo)["latent_id"]
    before = _pixels(photo.read_bytes())

    def change(strength: float) -> float:
        r = client.post("/edit", params={"latent_id": latent_id, "attribute": "Male", "strength": strength})
        return float(np.abs(_pixels(r.content) - before).mean())

    assert change(0.0) == 0.0
    assert 0 < change(0.5) < change(1.0)


def test_an_upload_edits_in_one_go_and_the_face_alone_is_the_editors_crop(client: TestClient, photos: Path) -> None:
    photo = photos / "einstein.jpg"
    r = client.post("/edit", params={"attribute": ["Smiling", "Young"], "strength": [1, -1], "format": "json"},
                    files={"file": (photo.name, photo.read_bytes())})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["pasted"] is True and [e["attribute"] for e in body["edits"]] == ["Smiling", "Young"]
    face = client.post("/edit", params={"latent_id": body["latent_id"], "attribute": "Smiling", "paste": False})
    assert face.status_code == 200 and Image.open(io.BytesIO(face.content)).size == (32, 32)


@pytest.mark.parametrize(
    ("method", "route", "what"),
    [
        ("get", "/interpolate?from={id}&to={id}", "morphing"),
        ("get", "/generate?seed=1&n=2", "generating"),
    ],
)
def test_routes_without_meaning_for_the_editor_say_so(
    client: TestClient, photos: Path, method: str, route: str, what: str
) -> None:
    latent_id = _encode(client, photos / "astronaut.png")["latent_id"]
    kwargs = {"json": {"latent_id": latent_id, "edits": [{"attribute": "Smiling", "strength": 1}]}}
    r = getattr(client, method)(route.format(id=latent_id), **(kwargs if method == "post" else {}))
    assert r.status_code == 422, r.text
    assert what in r.text and "editnet" in r.text


def test_the_optimised_edit_moves_the_editors_difference_under_its_discriminator(
    client: TestClient, photos: Path
) -> None:
    photo = photos / "astronaut.png"
    latent_id = _encode(client, photo)["latent_id"]
    body = {"latent_id": latent_id, "edits": [{"attribute": "Smiling", "strength": 1}], "steps": 5, "lambda2": 0.01}
    job = client.post("/edits/optimized", json=body)
    assert job.status_code == 202, job.text
    assert wait_for_job(client, job.json()["job_id"])["status"] == "succeeded"
    result = client.get(f"/jobs/{job.json()['job_id']}/result")
    before = _pixels(photo.read_bytes())
    after = _pixels(result.content)
    assert after.shape == before.shape and (after != before).any()
    other = _encode(client, photos / "einstein.jpg")["latent_id"]
    r = client.post("/edits/optimized", json={**body, "target_id": other})
    assert r.status_code == 422 and "target_id" in r.text


def test_custom_attributes_are_refused_clearly(client: TestClient, photos: Path) -> None:
    photo = (photos / "astronaut.png").read_bytes()
    files = [("with", ("a.png", photo))] * 3 + [("without", ("b.png", photo))] * 3
    r = client.post("/attributes/custom", files=files)
    assert r.status_code == 422 and "editnet" in r.text
    latent_id = _encode(client, photos / "astronaut.png")["latent_id"]
    r = client.post("/edit", params={"latent_id": latent_id, "attribute": "custom-abc", "strength": 1})
    assert r.status_code == 422 and "valid names" in r.text


def test_blend_generated_needs_a_latent_model(client: TestClient, photos: Path) -> None:
    latent_id = _encode(client, photos / "astronaut.png")["latent_id"]
    r = client.post("/edit", params={"latent_id": latent_id, "attribute": "Smiling", "blend": "generated"})
    assert r.status_code == 422 and "latent model" in r.text
