"""Decoding uploads safely and encoding images for answers."""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.services.errors import BadImage, NotAnImage, TooLarge

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Upload bytes -> (H, W, 3) uint8 RGB; the pixel limit is checked before decoding."""
    if not data:
        raise NotAnImage("the upload is empty; send a JPEG, PNG or WebP photo")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=FORMATS)
            w, h = opened.size
            if w * h > max_pixels:  # the header alone tells the size: nothing decoded yet
                raise TooLarge(f"the image has {w}x{h} pixels; the limit is {max_pixels} pixels", limit=max_pixels)
            opened.load()
    except TooLarge:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        if isinstance(e, UnidentifiedImageError):
            raise NotAnImage("the upload is not an image we can read (JPEG, PNG, WebP, BMP, GIF, TIFF)") from e
        raise TooLarge(f"the image is too large to decode: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"the image is damaged or truncated: {e}") from e
    im: Image.Image = opened
    if im.mode in ("RGBA", "LA", "P"):  # transparent pixels become white, not black
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)  # fast; faces are small
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


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
