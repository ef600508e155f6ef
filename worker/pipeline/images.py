"""Decoding uploads safely and encoding images for answers."""

from __future__ import annotations

import base64
import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from worker.pipeline.errors import BadImage, NotAnImage, TooLarge

# The service's default limits (FACEEDIT_MAX_IMAGE_PIXELS, FACEEDIT_MAX_PHOTO_PIXELS), so that the
# evaluation decodes photos as the service does: an upload's pixels (width * height, read from
# its header) and the size photos over it are scaled down to as they are decoded.
MAX_IMAGE_PIXELS = 40_000_000
MAX_PHOTO_PIXELS = 16_000_000
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
FORMAT_OF = {v: k for k, v in MEDIA_TYPES.items()}


@dataclass(frozen=True)
class Photo:
    """A decoded upload: upright RGB pixels and what is needed to answer in its own format."""

    pixels: np.ndarray  # (H, W, 3) uint8, EXIF orientation applied; transparency composited on white
    format: str  # "JPEG", "PNG", ... as Pillow names it
    exif: bytes  # the upload's EXIF (orientation reset), b"" if none
    alpha: np.ndarray | None = None  # (H, W) uint8 of a transparent upload: given back with the answer
    grey: bool = False  # a greyscale upload: answered in greyscale, not RGB with equal channels


def decode_photo(data: bytes, max_pixels: int, work_pixels: int | None = None) -> Photo:
    """Upload bytes -> Photo; the pixel limit is checked from the header, before decoding.

    A photo over `work_pixels` is scaled down to it: JPEGs while decoding (libjpeg's DCT
    scaling, so the full size never reaches memory), other formats right after.
    """
    if not data:
        raise NotAnImage("the upload is empty; send a JPEG, PNG or WebP photo")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=FORMATS)
            w, h = opened.size
            if w * h > max_pixels:  # the header alone tells the size: nothing decoded yet
                raise TooLarge(f"the image has {w}x{h} pixels; the limit is {max_pixels} pixels", limit=max_pixels)
            fmt = opened.format or "PNG"
            if work_pixels and w * h > work_pixels and fmt == "JPEG":
                scale = (work_pixels / (w * h)) ** 0.5
                opened.draft("RGB", (int(w * scale) + 1, int(h * scale) + 1))
            opened.load()
            im: Image.Image = opened
            if work_pixels and im.width * im.height > work_pixels:
                scale = (work_pixels / (im.width * im.height)) ** 0.5
                size = (max(1, int(im.width * scale)), max(1, int(im.height * scale)))
                im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)  # keeps info (EXIF)
            upright = ImageOps.exif_transpose(im)  # phone photos: rotate as the camera meant
    except TooLarge:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        if isinstance(e, UnidentifiedImageError):
            raise NotAnImage("the upload is not an image we can read (JPEG, PNG, WebP, BMP, GIF, TIFF)") from e
        raise TooLarge(f"the image is too large to decode: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"the image is damaged or truncated: {e}") from e
    exif = upright.getexif()
    alpha = None
    if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
        alpha = np.asarray(upright.convert("RGBA"), dtype=np.uint8)[..., 3].copy()
    grey = upright.mode in ("L", "LA", "I;16", "I;16B", "I;16L", "I", "F", "1")
    return Photo(_rgb(upright), fmt, exif.tobytes() if len(exif) else b"", alpha, grey)


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Upload bytes -> (H, W, 3) uint8 RGB, upright."""
    return decode_photo(data, max_pixels).pixels


def _rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit and float greys: scale, don't clip
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        grey = (a / top * 255).clip(0, 255).round().astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "P", "PA"):  # transparent pixels become white, not black
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def encode_like(
    img: np.ndarray, photo: Photo, media_type: str | None = None, box: tuple[int, int, int, int] | None = None
) -> tuple[bytes, str]:
    """The answer in the upload's own format (JPEG stays JPEG, with its EXIF; greyscale stays
    greyscale; transparency is given back), else PNG; or in `media_type` when the client asked
    for another. `img` is the photo, or the part of it inside `box` (x0, y0, x1, y1)."""
    fmt = FORMAT_OF.get(media_type or "") or (photo.format if photo.format in MEDIA_TYPES else "PNG")
    im = Image.fromarray(img)
    if photo.grey:
        im = im.convert("L")
    alpha = photo.alpha
    if alpha is not None and box is not None:
        alpha = alpha[box[1] : box[3], box[0] : box[2]]
    if alpha is not None and fmt != "JPEG" and alpha.shape == img.shape[:2]:
        im.putalpha(Image.fromarray(alpha))  # RGBA (or LA): the upload's transparency, untouched
    if fmt == "PNG":
        return saved(im, "PNG", compress_level=1, exif=photo.exif), MEDIA_TYPES[fmt]
    return saved(im, fmt, quality=92, exif=photo.exif), MEDIA_TYPES[fmt]


def saved(im: Image.Image, fmt: str, **options: object) -> bytes:
    """`im` encoded. Into a memory-backed file where the system has them: Pillow then encodes
    to the file descriptor in one call without the GIL; into a BytesIO it holds the GIL while it
    fills each 64 KiB of output, which for a flat, well-compressed photo is megapixels of input
    (the event loop waited up to 190 ms on one 39 Mpx PNG). The bytes are the same either way."""
    if not hasattr(os, "memfd_create"):
        buf = io.BytesIO()
        im.save(buf, format=fmt, **options)
        return buf.getvalue()
    with os.fdopen(os.memfd_create("faceedit-answer", os.MFD_CLOEXEC), "w+b") as f:
        im.save(f, format=fmt, **options)
        f.seek(0)
        return f.read()


def own_media_type(photo: Photo) -> str:
    return MEDIA_TYPES.get(photo.format, "image/png")


def media_type_of(data: bytes) -> str:
    """The media type of an image answer we encoded (by its magic bytes)."""
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def png_bytes(img: np.ndarray) -> bytes:
    return saved(Image.fromarray(img), "PNG", compress_level=1)  # fast; faces are small


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


def strip(images: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) -> (S, N*S, 3): frames side by side."""
    return np.concatenate(list(images), axis=1)


def gif_bytes(images: np.ndarray, ms_per_frame: int = 120) -> bytes:
    """An animated GIF that plays the frames forward then back, looping forever."""
    frames = [Image.fromarray(f) for f in images]
    frames = frames + frames[-2:0:-1]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
    return buf.getvalue()
