"""A job the service knows will fail is refused when it is submitted, not accepted and failed later."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any


def _encode(client: Any, photos: Path) -> str:
    r = client.post("/encode", files={"file": ("a.png", (photos / "astronaut.png").read_bytes())})
    return r.json()["latent_id"]  # type: ignore[no-any-return]


def test_an_empty_latent_id_is_refused(client: Any) -> None:
    r = client.post("/edits/optimized", json={"latent_id": "", "steps": 3})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "latent_id"


def test_a_generated_face_without_a_target_is_refused(client: Any, photos: Path) -> None:
    generated = client.get("/generate", params={"seed": 1, "n": 1, "format": "json"}).json()
    gid = generated["faces"][0]["latent_id"]
    r = client.post("/edits/optimized", json={"latent_id": gid, "steps": 3})
    assert r.status_code == 422 and "target_id" in r.json()["detail"]
    lid = _encode(client, photos)  # with a target it is a valid job
    assert client.post("/edits/optimized", json={"latent_id": gid, "target_id": lid, "steps": 3}).status_code == 202


def test_booleans_are_not_numbers(client: Any, photos: Path) -> None:
    lid = _encode(client, photos)
    for field in ("lambda2", "lambda1", "steps", "lr"):
        r = client.post("/edits/optimized", json={"latent_id": lid, field: False})
        assert r.status_code == 422, field
        assert r.json()["detail"][0]["loc"][-1] == field


def test_strokes_that_are_not_an_image_get_a_documented_415(client: Any, photos: Path) -> None:
    lid = _encode(client, photos)
    junk = base64.b64encode(b"not an image at all").decode()
    r = client.post("/edits/optimized", json={"latent_id": lid, "strokes": junk, "mask": junk, "steps": 3})
    assert r.status_code == 415
    documented = client.get("/openapi.json").json()["paths"]["/edits/optimized"]["post"]["responses"]
    assert "415" in documented
