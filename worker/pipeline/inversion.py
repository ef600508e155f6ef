"""A decoded photo to a face the model can edit: found, aligned, inverted (E(x), then refined).

The service's `/encode` and the evaluation of whole photos (`training.photos`) both invert
photos through `invert_photo`, so what is measured is what users get.
"""

from __future__ import annotations

from models.latent_math import RefineOptions
from worker.pipeline import faces
from worker.pipeline.encoded import Encoded, new_id
from worker.pipeline.engine import Engine
from worker.pipeline.images import Photo

# The refinement `/encode` runs by default (FACEEDIT_REFINE_STEPS, FACEEDIT_REFINE_BUDGET_MS): at
# most this many optimiser steps and this much wall time per face.
REFINE = RefineOptions(steps=60, budget_s=0.6)


def invert_photo(
    engine: Engine, photo: Photo, *, face: int = 0, aligned: bool = False, refine: RefineOptions | None = None
) -> Encoded:
    """The photo's `face`-th largest face (or the whole image, when it is an `aligned` crop),
    warped to the model's crop and inverted: E(x), then refined with `refine`. Not stored."""
    crop, box, boxes = faces.face_crop(photo.pixels, engine.image_size, engine.geometry, face=face, aligned=aligned)
    z = engine.encode(crop.pixels[None])[0]
    stats = None
    if refine is not None:
        z_opt, stats = engine.refine(crop.pixels, crop.valid, z[None], refine)
        z = z_opt[0]
    return Encoded(new_id(), z, crop, photo, faces.is_grayscale(photo.pixels), box, boxes, stats)
