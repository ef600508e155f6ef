"""A face as the pipeline gives it: `Encoded` (its latent, its crop, the photo it came from) and
the ids faces, jobs and custom attributes are named by.

What the service keeps of a face between requests (its store records) is
`worker.service.latents`; this is what one request knows of it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import numpy as np
import torch

from models.latent_math import RefineStats
from worker.pipeline.faces import Aligned
from worker.pipeline.images import Photo


def new_id() -> str:
    """128 random bits, URL-safe: unguessable, so ids double as capabilities."""
    return secrets.token_urlsafe(16)


@dataclass
class Encoded:
    """One face as a request knows it: its latent, its crop, and the photo it came from."""

    latent_id: str
    z: torch.Tensor  # (nz,) refined latent
    aligned: Aligned | None  # None for generated faces
    photo: Photo | None = None  # decoded upload, None when the request did not need it
    grayscale: bool = False
    face_box: tuple[int, int, int, int] | None = None
    all_faces: list[tuple[int, int, int, int]] = field(default_factory=list)  # every face found, largest first
    inversion: RefineStats | None = None  # how E(x) was refined; None when it was not
    base: np.ndarray | None = None  # (S, S, 3) uint8 G(z), when known (the face cache keeps it)
