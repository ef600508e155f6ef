"""The HTTP API on a tiny model, in the embedded mode (no Redis)."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import wait_for_job


def _img(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _encode(client: TestClient, path: Path, **params: Any) -> dict[str, Any]:
    r = client.post("/encode", files={"file": (path.name, path.read_bytes())}, params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_encode_finds_and_aligns_the_face(client: TestClient, photos: Path) -> None:
    body = _encode(client, photos / "astronaut.png")
    assert body["faces_found"] == 1 and len(body["z"]) == 8
    x, y, w, h = body["face_box"]
    assert 150 < x < 220 and 40 < y < 110 and 60 < w < 140  # her face, in the 512 x 512 photo
    assert len(body["latent_id"]) >= 20
    for key in ("aligned", "reconstruction"):
        png = body[key].split(",", 1)[1]
        import base64

        assert Image.open(io.BytesIO(base64.b64decode(png))).size == (64, 64)


def test_encode_picks_the_requested_face(client: TestClient, photos: Path) -> None:
    first = _encode(client, photos / "group.jpg")
    second = _encode(client, photos / "group.jpg", face=1)
    assert first["faces_found"] == len(first["faces"]) == 6
    a, b = first["face_box"], second["face_box"]
    assert a != b and a[2] * a[3] >= b[2] * b[3]  # largest first
    assert first["faces"][:2] == [a, b] and second["faces"] == first["faces"]
    r = client.post("/encode", files={"file": ("g.jpg", (photos / "group.jpg").read_bytes())}, params={"face": 50})
    assert r.status_code == 422 and "face(s)" in r.json()["detail"]


def test_edit_at_strength_zero_is_the_reconstruction(client: TestClient, photos: Path) -> None:
    body = _encode(client, photos / "astronaut.png")
    import base64

    rec = _img(base64.b64decode(body["reconstruction"].split(",", 1)[1]))
    face = {"latent_id": body["latent_id"], "attribute": "Smiling", "paste": False}
    r = client.post("/edit", params={**face, "strength": 0})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert np.array_equal(_img(r.content), rec)
    r2 = client.post("/edit", params={**face, "strength": 3})
    assert not np.array_equal(_img(r2.content), rec)


def test_edit_answers_the_users_own_photo_changed_only_where_the_edit_acts(client: TestClient, photos: Path) -> None:
    original = _img((photos / "astronaut.png").read_bytes())
    lid = _encode(client, photos / "astronaut.png")["latent_id"]
    same = client.post("/edit", params={"latent_id": lid, "attribute": "Smiling", "strength": 0})
    assert same.headers["content-type"] == "image/png"  # PNG in, PNG out
    assert np.array_equal(_img(same.content), original)  # no edit: not one pixel of the photo moves
    edited = _img(client.post("/edit", params={"latent_id": lid, "attribute": "Male", "strength": 5}).content)
    changed = np.abs(edited.astype(int) - original).max(2) > 2
    assert changed.any()
    ys, xs = np.nonzero(changed)  # all of the change lies on and around her face (x 178-267, y 63-175)
    assert xs.min() > 120 and xs.max() < 330 and ys.min() >= 0 and ys.max() < 260


def test_several_attributes_repeated_or_as_json_list(client: TestClient, photos: Path) -> None:
    lid = _encode(client, photos / "astronaut.png")["latent_id"]
    repeated = client.post(
        "/edit",
        params=[
            ("latent_id", lid),
            ("attribute", "Male"),
            ("strength", "1.5"),
            ("attribute", "Young"),
            ("strength", "-1"),
        ],
    )
    as_json = client.post(
        "/edit", params={"latent_id": lid, "attribute": json.dumps(["Male", "Young"]), "strength": "[1.5, -1]"}
    )
    only_male = client.post("/edit", params={"latent_id": lid, "attribute": "Male", "strength": 1.5})
    assert repeated.status_code == as_json.status_code == 200
    assert repeated.content == as_json.content != only_male.content
    j = client.post("/edit", params={"latent_id": lid, "attribute": "Male", "format": "json"}).json()
    assert j["edits"] == [{"attribute": "Male", "strength": 1.0}] and j["image"].startswith("data:image/png;base64,")


def test_edit_an_upload_directly_and_paste_it_back(client: TestClient, photos: Path) -> None:
    data = (photos / "astronaut.png").read_bytes()
    photo = np.asarray(Image.open(photos / "astronaut.png").convert("RGB"))
    for blend in ("change", "generated"):
        params = {"attribute": "Smiling", "strength": 5, "paste": True, "blend": blend}
        r = client.post("/edit", files={"file": ("a.png", data)}, params=params)
        assert r.status_code == 200
        out = _img(r.content)
        assert out.shape == photo.shape
        diff = np.abs(out.astype(int) - photo.astype(int)).sum(2)
        assert diff[:25].max() == 0 and diff[-100:].max() == 0, blend  # outside the aligned crop: untouched
        assert diff[90:160, 190:260].mean() > 2, blend  # the face itself changed
    lid = r.headers["x-latent-id"]
    assert client.post("/edit", params={"latent_id": lid, "attribute": "Male"}).status_code == 200
    quick = client.post("/edit", files={"file": ("a.png", data)}, params={"attribute": "Smiling", "refine": False})
    assert quick.status_code == 200 and _img(quick.content).shape == photo.shape


def test_aligned_upload_skips_detection(client: TestClient) -> None:
    face = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)  # no face to detect
    assert client.post("/encode", files={"file": ("f.png", _png(face))}).status_code == 422
    r = client.post("/encode", files={"file": ("f.png", _png(face))}, params={"aligned": True})
    assert r.status_code == 200 and r.json()["face_box"] is None


@pytest.mark.parametrize(
    ("params", "status", "text"),
    [
        ({"attribute": "Moustache_Wax"}, 422, "valid names"),
        ({"attribute": "Male", "strength": 99}, 422, "strength must be within"),
        ({"attribute": "Male", "strength": "nan"}, 422, "strength"),
        ({"attribute": "Male", "strength": "lots"}, 422, "number"),
        ({"attribute": ["Male", "Young", "Bald"], "strength": [1, 2]}, 422, "3 attributes but 2"),
        ({"attribute": "[not json"}, 422, "JSON"),
        ({"latent_id": "doesnotexist", "attribute": "Male"}, 404, "unknown or expired"),
        ({"attribute": "Male", "format": "tiff"}, 422, ""),
    ],
)
def test_edit_errors(client: TestClient, photos: Path, params: dict[str, Any], status: int, text: str) -> None:
    params = {"latent_id": _encode(client, photos / "astronaut.png")["latent_id"], **params}
    r = client.post("/edit", params=params)
    assert r.status_code == status, r.text
    assert text in r.text
    if "valid names" in text:
        assert "Smiling" in r.json()["valid"]


def test_edit_needs_an_image_or_a_latent(client: TestClient) -> None:
    r = client.post("/edit", params={"attribute": "Male"})
    assert r.status_code == 422 and "latent_id" in r.json()["detail"]


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels: tiny file, huge image."""
    raw = zlib.compress(b"\x00" * (width // 8 + 1) * 8)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + tag + data + zlib.crc32(tag + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_bad_uploads(make_client: Any, photos: Path) -> None:
    client = make_client(max_upload_bytes=200_000)
    jpeg = (photos / "messi5.jpg").read_bytes()
    cases = [
        (b"", 415, "empty"),
        (b"%PDF-1.4 definitely not a photo", 415, "not an image"),
        (jpeg[: len(jpeg) // 3], 422, "damaged or truncated"),
        (_bomb_png(30_000, 30_000), 413, "pixels"),
        (b"\xff" * 300_000, 413, "larger than the limit"),
        (_png(np.full((300, 300, 3), 128, np.uint8)), 422, "no face"),
    ]
    for data, status, text in cases:
        r = client.post("/encode", files={"file": ("upload.jpg", data)})
        assert r.status_code == status, (text, r.text)
        assert text in r.json()["detail"]
    # the service still works after all that
    assert client.post("/encode", files={"file": ("m.jpg", jpeg)}).status_code == 200


def test_interpolation_formats(client: TestClient, photos: Path) -> None:
    a = _encode(client, photos / "astronaut.png")["latent_id"]
    b = _encode(client, photos / "messi5.jpg")["latent_id"]
    r = client.get("/interpolate", params={"from": a, "to": b, "steps": 5})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (5 * 64, 64)
    gif = Image.open(
        io.BytesIO(client.get("/interpolate", params={"from": a, "to": b, "steps": 5, "format": "gif"}).content)
    )
    assert gif.format == "GIF" and gif.n_frames == 8  # forth and back
    frames = client.get(
        "/interpolate", params={"from": a, "to": b, "steps": 3, "method": "linear", "format": "json"}
    ).json()["frames"]
    assert len(frames) == 3
    assert client.get("/interpolate", params={"from": a, "to": b, "steps": 1000}).status_code == 422
    assert client.get("/interpolate", params={"from": a, "to": b, "method": "cubic"}).status_code == 422
    assert client.get("/interpolate", params={"from": a, "to": "gone"}).status_code == 404


def test_a_morph_carries_the_same_edit_in_every_frame(client: TestClient, photos: Path) -> None:
    a = _encode(client, photos / "astronaut.png")["latent_id"]
    b = _encode(client, photos / "messi5.jpg")["latent_id"]

    def frames(**edit: object) -> list[np.ndarray]:
        r = client.get("/interpolate", params={"from": a, "to": b, "steps": 3, "method": "linear", **edit})
        assert r.status_code == 200, r.text
        strip = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)
        return [strip[:, i * 64 : (i + 1) * 64] for i in range(3)]

    def edited(latent_id: str) -> np.ndarray:
        r = client.post("/edit", params={"latent_id": latent_id, "attribute": "Smiling", "strength": 2, "paste": False})
        return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)

    plain, smiling = frames(), frames(attribute="Smiling", strength=2)
    assert all(np.abs(p - s).mean() > 1 for p, s in zip(plain, smiling, strict=True))  # every frame edited
    assert np.abs(smiling[0] - edited(a)).max() <= 1 and np.abs(smiling[-1] - edited(b)).max() <= 1  # as /edit
    assert client.get("/interpolate", params={"from": a, "to": b, "attribute": "Nope"}).status_code == 422


def test_optimized_edit_job(client: TestClient, photos: Path) -> None:
    lid = _encode(client, photos / "astronaut.png")["latent_id"]
    r = client.post(
        "/edits/optimized", json={"latent_id": lid, "edits": [{"attribute": "Smiling", "strength": 1}], "steps": 10}
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["result_url"] == f"/jobs/{job['job_id']}/result"
    done = wait_for_job(client, job["job_id"])
    assert done["status"] == "succeeded" and done["progress"] == 1.0 and done["step"] == 10
    img = client.get(job["result_url"])  # the user's photo with the optimised change applied
    assert img.status_code == 200 and Image.open(io.BytesIO(img.content)).size == (512, 512)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"steps": 10_000}, 422),
        ({"lambda1": -1}, 422),
        ({"lambda2": 100}, 422),
        ({"lr": 0}, 422),
        ({"edits": [{"attribute": "Wings", "strength": 1}]}, 422),
        ({"edits": [{"attribute": "Male", "strength": 50}]}, 422),
        ({"latent_id": "nope"}, 404),
        ({"target_id": "nope"}, 404),
    ],
)
def test_optimized_edit_refuses_bad_requests(
    client: TestClient, photos: Path, body: dict[str, Any], status: int
) -> None:
    lid = _encode(client, photos / "astronaut.png")["latent_id"]
    assert client.post("/edits/optimized", json={"latent_id": lid, **body}).status_code == status


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_in_json_are_422(client: TestClient, photos: Path, number: str) -> None:
    lid = _encode(client, photos / "astronaut.png")["latent_id"]
    for body in (
        f'{{"latent_id": "{lid}", "lambda1": {number}}}',
        f'{{"latent_id": "{lid}", "edits": [{{"attribute": "Male", "strength": {number}}}]}}',
    ):
        r = client.post("/edits/optimized", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize("size", [(5000, 2), (2, 5000), (1, 1)])
def test_very_thin_images_get_an_answer_not_a_500(client: TestClient, size: tuple[int, int]) -> None:
    data = _png(np.zeros((size[1], size[0], 3), np.uint8))
    assert client.post("/encode", files={"file": ("t.png", data)}).status_code == 422  # no face in a line
    assert client.post("/encode", files={"file": ("t.png", data)}, params={"aligned": True}).status_code == 200


def test_unknown_jobs_are_404(client: TestClient) -> None:
    assert client.get("/jobs/unknown").status_code == 404
    assert client.get("/jobs/unknown/result").status_code == 404


def test_full_queue_answers_429(make_client: Any, photos: Path) -> None:
    client = make_client(max_queue=1, local_workers=1)
    lid = _encode(client, photos / "astronaut.png")["latent_id"]
    first = client.post("/edits/optimized", json={"latent_id": lid, "steps": 500})
    assert first.status_code == 202
    second = client.post("/edits/optimized", json={"latent_id": lid, "steps": 5})
    assert second.status_code == 429 and "limit" in second.json()["detail"]
    early = client.get(first.json()["result_url"])
    assert early.status_code in (200, 409)  # 409 while it runs; the job is not lost
    assert wait_for_job(client, first.json()["job_id"])["status"] == "succeeded"
    assert client.post("/edits/optimized", json={"latent_id": lid, "steps": 5}).status_code == 202


def test_attributes_generate_health(client: TestClient) -> None:
    attrs = client.get("/attributes").json()
    assert len(attrs["attributes"]) == 40 and attrs["max_strength"] == 5.0
    smiling = next(a for a in attrs["attributes"] if a["name"] == "Smiling")
    assert smiling["description"] == "adds a smile (negative: a neutral mouth)" and smiling["with_count"] == 10
    assert smiling["regions"] == ["head"] and smiling["reached"] is None  # an uncalibrated model: the whole head
    strip = client.get("/generate", params={"n": 3, "seed": 1})
    assert Image.open(io.BytesIO(strip.content)).size == (3 * 64, 64)
    assert strip.content == client.get("/generate", params={"n": 3, "seed": 1}).content  # seeded
    faces = client.get("/generate", params={"n": 2, "format": "json"}).json()["faces"]
    assert client.post("/edit", params={"latent_id": faces[0]["latent_id"], "attribute": "Male"}).status_code == 200
    paste = client.post("/edit", params={"latent_id": faces[0]["latent_id"], "attribute": "Male", "paste": True})
    assert paste.status_code == 422 and "uploaded photo" in paste.json()["detail"]
    assert client.get("/generate", params={"n": 0}).status_code == 422
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] and ready["queue"] == "embedded"


def test_api_key_protects_every_route(make_client: Any) -> None:
    client = make_client(api_key="s3cret")
    for method, url in [
        ("GET", "/attributes"),
        ("GET", "/ready"),
        ("GET", "/generate"),
        ("POST", "/edit"),
        ("GET", "/jobs/x"),
        ("POST", "/edits/optimized"),
        ("GET", "/interpolate"),
    ]:
        assert client.request(method, url).status_code == 401, url
    assert client.get("/attributes", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/attributes", headers={"X-API-Key": "s3cret"}).status_code == 200


def test_cors_is_closed_by_default(client: TestClient, make_client: Any) -> None:
    pre = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/edit", headers=pre).headers
    opened = make_client(cors_origins=["https://app.example"])
    r = opened.options("/edit", headers={**pre, "Origin": "https://app.example"})
    assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_encode_reports_the_refined_inversion(client: TestClient, photos: Path) -> None:
    inv = _encode(client, photos / "astronaut.png")["inversion"]
    assert inv["refined"] and inv["steps"] >= 1 and inv["l2"] <= inv["l2_encoder"]
    plain = _encode(client, photos / "astronaut.png", refine=False)["inversion"]
    assert not plain["refined"] and plain["steps"] == 0


def test_jpeg_in_jpeg_out_with_its_exif_and_grey_stays_grey(client: TestClient, photos: Path) -> None:
    grey = Image.open(photos / "astronaut.png").convert("L")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # the camera's make, which the answer must keep
    buf = io.BytesIO()
    grey.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    r = client.post("/edit", files={"file": ("g.jpg", buf.getvalue())}, params={"attribute": "Male", "strength": 5})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    out = Image.open(io.BytesIO(r.content))
    assert out.format == "JPEG" and out.size == grey.size and out.getexif().get(0x010F) == "PhoneMaker"
    assert out.mode == "L"  # greyscale in its own mode, not RGB with equal channels


def test_a_transparent_png_comes_back_with_its_transparency(client: TestClient, photos: Path) -> None:
    rgba = Image.open(photos / "astronaut.png").convert("RGBA")
    alpha = np.full(rgba.size[::-1], 255, np.uint8)
    alpha[:, :60] = 0  # a cut-out: the left edge transparent
    alpha[:, 60:90] = 128
    rgba.putalpha(Image.fromarray(alpha))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    r = client.post("/edit", files={"file": ("t.png", buf.getvalue())}, params={"attribute": "Smiling"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    out = Image.open(io.BytesIO(r.content))
    assert out.mode == "RGBA" and out.size == rgba.size
    assert np.array_equal(np.asarray(out)[..., 3], alpha)


def test_no_face_answer_says_what_to_try(client: TestClient) -> None:
    blank = np.full((200, 200, 3), 200, np.uint8)
    r = client.post("/encode", files={"file": ("b.png", _png(blank))})
    assert r.status_code == 422 and "aligned=true" in r.json()["detail"]


def _data_url(arr: np.ndarray) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(_png(arr)).decode()


def test_brush_edit_paints_strokes_into_the_users_photo(client: TestClient, photos: Path) -> None:
    lid = _encode(client, photos / "astronaut.png")["latent_id"]
    strokes = np.zeros((128, 128, 3), np.uint8)
    strokes[80:100, 40:90] = (220, 40, 40)  # red lips, painted on the aligned face
    mask = np.zeros((128, 128, 3), np.uint8)
    mask[80:100, 40:90] = 255
    body = {"latent_id": lid, "steps": 10, "strokes": _data_url(strokes), "mask": _data_url(mask)}
    r = client.post("/edits/optimized", json=body)
    assert r.status_code == 202, r.text
    assert wait_for_job(client, r.json()["job_id"])["status"] == "succeeded"
    result = client.get(r.json()["result_url"])
    assert result.headers["content-type"] == "image/png"  # the astronaut is a PNG: the photo comes back as one
    assert Image.open(io.BytesIO(result.content)).size == (512, 512)


@pytest.mark.parametrize(
    ("strokes", "mask", "text"),
    [
        ((64, 64), None, "both"),
        ((64, 64), (32, 32), "same size"),
        ((64, 64), "empty", "mask is empty"),
        ("garbage", (64, 64), "data URL or base64"),
    ],
)
def test_brush_edit_refuses_bad_strokes(client: TestClient, photos: Path, strokes: Any, mask: Any, text: str) -> None:
    lid = _encode(client, photos / "astronaut.png")["latent_id"]

    def image(spec: Any, value: int = 255) -> str | None:
        if spec is None:
            return None
        if spec == "garbage":
            return "data:image/png;base64,@@@"
        if spec == "empty":
            return _data_url(np.zeros((64, 64, 3), np.uint8))
        return _data_url(np.full((*spec, 3), value, np.uint8))

    r = client.post("/edits/optimized", json={"latent_id": lid, "strokes": image(strokes), "mask": image(mask)})
    assert r.status_code == 422 and text in r.json()["detail"], r.text


def _group_faces(photos: Path) -> list[bytes]:
    """Each person of group.jpg cut out as a photo of their own."""
    group = Image.open(photos / "group.jpg").convert("RGB")
    out = []
    for x, y, w, h in ((462, 264, 112, 150), (750, 346, 92, 124), (1132, 274, 94, 124), (898, 56, 106, 138)):
        buf = io.BytesIO()
        group.crop((x - w // 2, y - h // 2, x + w + w // 2, y + h + h // 2)).save(buf, "JPEG")
        out.append(buf.getvalue())
    return out


def test_custom_attribute_from_a_few_photos(client: TestClient, photos: Path) -> None:
    with_look = [(photos / n).read_bytes() for n in ("astronaut.png", "einstein.jpg", "messi5.jpg")]
    files = [("with", (f"w{i}.jpg", d)) for i, d in enumerate(with_look)]
    files += [("without", (f"n{i}.jpg", d)) for i, d in enumerate(_group_faces(photos)[:3])]
    r = client.post("/attributes/custom", files=files, params={"name": "famous", "keep": ["Male"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["id"].startswith("custom-") and made["faces_with"] == 3 and made["keep"] == ["Male"]
    assert client.get(f"/attributes/custom/{made['id']}").json() == made
    lid = _encode(client, photos / "astronaut.png")["latent_id"]
    face = {"latent_id": lid, "paste": False}
    plain = client.post("/edit", params={**face, "attribute": made["id"], "strength": 0}).content
    edited = client.post("/edit", params={**face, "attribute": made["id"], "strength": 3})
    assert edited.status_code == 200 and edited.content != plain
    both = client.post("/edit", params=[*face.items(), ("attribute", made["id"]), ("attribute", "Smiling")])
    assert both.status_code == 200
    job = client.post("/edits/optimized", json={"latent_id": lid, "edits": [{"attribute": made["id"], "strength": 1}]})
    assert job.status_code == 422 and "/edit only" in job.json()["detail"]


def test_custom_attribute_refuses_bad_examples(client: TestClient, photos: Path) -> None:
    faces = _group_faces(photos)
    blank = _png(np.full((200, 200, 3), 200, np.uint8))

    def post(with_look: list[bytes], without: list[bytes], **params: Any) -> Any:
        files = [("with", (f"w{i}.jpg", d)) for i, d in enumerate(with_look)]
        files += [("without", (f"n{i}.jpg", d)) for i, d in enumerate(without)]
        return client.post("/attributes/custom", files=files, params=params)

    few = post(faces[:2], faces[2:4])
    assert few.status_code == 422 and "3 to 12" in few.json()["detail"]
    no_face = post([faces[0], blank, faces[1]], faces[:3])
    assert no_face.status_code == 422 and "photo 2 with the look" in no_face.json()["detail"]
    unknown = post(faces[:3], faces[1:4], keep=["Wings"])
    assert unknown.status_code == 422 and "Wings" in unknown.json()["detail"]
    assert client.get("/attributes/custom/custom-nope").status_code == 404
    lid = _encode(client, photos / "astronaut.png")["latent_id"]
    assert client.post("/edit", params={"latent_id": lid, "attribute": "custom-nope"}).status_code == 404


def test_an_edit_answers_exactly_by_default_cheaper_when_asked_and_as_a_tile(client: TestClient, photos: Path) -> None:
    upload = (photos / "astronaut.png").read_bytes()
    original = np.asarray(Image.open(io.BytesIO(upload)).convert("RGB")).astype(int)
    latent_id = _encode(client, photos / "astronaut.png")["latent_id"]
    params = {"latent_id": latent_id, "attribute": "Smiling", "strength": 3}

    exact = client.post("/edit", params=params)  # no Accept: the photo in its own format, its own size
    assert exact.status_code == 200 and exact.headers["content-type"] == "image/png"
    assert exact.headers["vary"] == "Accept"
    full = np.asarray(Image.open(io.BytesIO(exact.content)).convert("RGB")).astype(int)
    assert full.shape == original.shape and np.abs(full - original).max() > 0
    anything = client.post("/edit", params=params, headers={"Accept": "image/*, */*;q=0.8"})
    assert anything.content == exact.content  # a browser's Accept changes nothing

    jpeg = client.post("/edit", params=params, headers={"Accept": "image/jpeg, image/png;q=0"})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == Image.open(io.BytesIO(exact.content)).size
    assert len(jpeg.content) < len(exact.content)

    tile = client.post("/edit", params={**params, "tile": "true"})
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
    x0, y0, x1, y1 = (int(v) for v in tile.headers["x-tile-box"].split(","))
    assert tile.headers["x-photo-size"] == f"{original.shape[1]},{original.shape[0]}"
    pixels = np.asarray(Image.open(io.BytesIO(tile.content)).convert("RGB")).astype(int)
    assert pixels.shape == (y1 - y0, x1 - x0, 3) and len(tile.content) < len(exact.content) / 3
    composited = original.copy()
    composited[y0:y1, x0:x1] = pixels
    assert np.array_equal(composited, full)  # the tile over the photo is the exact answer
    outside = np.ones(original.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(full[outside], original[outside])  # nothing changes outside the face's box

    refused = client.post("/edit", params=params, headers={"Accept": "text/html"})
    assert refused.status_code == 406 and "image/jpeg" in refused.json()["detail"]
