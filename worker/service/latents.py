"""A face as the service keeps it between requests: its store records.

What is stored for later requests of a face (`worker.pipeline.encoded.Encoded`): the z record,
the crop as an RGBA PNG (alpha = valid pixels) and the photo's original bytes, each under its
own key with the latent TTL. The API's editor and the job code both read faces through
`load_face`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from worker.pipeline.encoded import Encoded
from worker.pipeline.errors import NotFound
from worker.pipeline.faces import Aligned
from worker.pipeline.images import Photo, png_bytes
from worker.service.store import Store, key


def save_face(store: Store, enc: Encoded, photo_bytes: bytes | None, ttl_s: int) -> None:
    record: dict[str, Any] = {"z": enc.z.tolist(), "grayscale": enc.grayscale}
    if enc.aligned is not None:
        record["matrix"] = enc.aligned.matrix.tolist()
        rgba = np.dstack([enc.aligned.pixels, enc.aligned.valid.astype(np.uint8) * 255])
        store.put(key("face", enc.latent_id), png_bytes(rgba), ttl_s)
    store.put(key("latent", enc.latent_id), json.dumps(record).encode(), ttl_s)
    if photo_bytes is not None:
        store.put(key("photo", enc.latent_id), photo_bytes, ttl_s)


def load_face(store: Store, latent_id: str, decode: Callable[[bytes], Photo] | None = None) -> Encoded:
    """A face stored by an earlier request; its photo decoded (by `decode`) only when given one."""
    raw = store.get(key("latent", latent_id))
    if raw is None:
        raise NotFound(f"unknown or expired latent id {latent_id!r}; encode the face again")
    record = json.loads(raw)
    enc = Encoded(latent_id, torch.tensor(record["z"], dtype=torch.float32), None, grayscale=record["grayscale"])
    face_png = store.get(key("face", latent_id)) if "matrix" in record else None
    if face_png is not None:
        rgba = np.asarray(Image.open(io.BytesIO(face_png)).convert("RGBA"))
        enc.aligned = Aligned(rgba[..., :3].copy(), rgba[..., 3] > 127, np.array(record["matrix"]))
    if decode is not None:
        photo_bytes = store.get(key("photo", latent_id))
        if photo_bytes is not None:
            enc.photo = decode(photo_bytes)
    return enc
