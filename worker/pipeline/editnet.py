"""The image-to-image editor in the photo pipeline: a face found and aligned to the editor's
head crop, edited in one forward pass, and the change pasted back by the edit's own mask.

There is no latent to invert: what the service keeps of such a face is its crop (and photo).
`Encoded.z` is empty for it. An edit sends the difference vector d (K,): each asked attribute's
strength times its calibrated scale (models/checkpoint.EditorCalibration). The edit is
x + m * (c - x) with a mask that is exactly 0 where nothing changes, so the change pasted
into the photo, (edit - crop) warped back to the photo's pixels, is 0 there too: the photo
keeps its own pixels wherever the edit does not act.

A dim photo is lifted before the editor reads it (`exposure_gain`): the editor learnt on faces
exposed as CelebA's are, and on a face at 0.4 of that light it drew changes that lost the person
(MODEL_CARD.md). Its change is then brought back down by the same gain, so the answer keeps the
photo's own light. The optimised edit (worker/service/optimized.py) works on the lifted crop too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from models.checkpoint import EditorModel, load_editor
from models.editnet import regions_of
from models.geometry import FaceGeometry
from models.pixels import LUMA, from_uint8, to_uint8
from worker.pipeline import faces
from worker.pipeline.batcher import Batcher
from worker.pipeline.composite import Region, change_region
from worker.pipeline.encoded import Encoded, new_id
from worker.pipeline.errors import InvalidParameter
from worker.pipeline.images import Photo

# A crop whose brightest 1% (of the photo's own pixels) lies below this luminance is lifted to it. On
# 150 held-out CelebA faces (the editor's crop) that 99th percentile lies at 176-255 (5th-95th
# percentiles), on UTKFace's faces of every skin tone at 155-254, on the same CelebA faces at 0.4 of
# their light at 70-102. So a dim photo is lifted (x 1.6-2.3), and of 300 UTKFace faces of each group
# 1-9% are, by a median 1.03-1.11 (MODEL_CARD.md).
EXPOSURE_TARGET = 160.0
MAX_GAIN = 3.0


def exposure_gain(crops: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(B,) float32 gains >= 1 for crops (B, S, S, 3) uint8: how far each dim crop's light is lifted,
    read from its pixels that came from the photo where `valid` (B, S, S) says which (the fill
    beyond a photo's edge is not the photo's light)."""
    lum = crops.astype(np.float32) @ np.array(LUMA, np.float32)
    valid = np.ones(lum.shape, bool) if valid is None else valid
    top = np.array([np.percentile(v[m] if m.any() else v, 99) for v, m in zip(lum, valid, strict=True)])
    return np.clip(EXPOSURE_TARGET / np.maximum(top, 1.0), 1.0, MAX_GAIN).astype(np.float32)


def lift(pixels: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Crops (B, S, S, 3), uint8 or float, in the light the editor knows: x gain (B,), as uint8."""
    return (pixels.astype(np.float32) * gain[:, None, None, None]).round().clip(0, 255).astype(np.uint8)


def bring_down(crops: np.ndarray, lifted: np.ndarray, edited: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """The crops (B, S, S, 3) uint8 with the change the editor made to their lifted copies, brought
    back down to their own light: crops + (edited - lifted) / gain."""
    change = edited.astype(np.float32) - lifted
    return (crops + change / gain[:, None, None, None]).round().clip(0, 255).astype(np.uint8)


class EditNetEngine:
    """The loaded editor; `edit` calls from concurrent requests share forward passes."""

    family = "editnet"

    def __init__(self, model: EditorModel, batch_max: int = 16, batch_wait_ms: float = 2.0) -> None:
        self.model = model.eval()
        self.cfg = model.cfg
        self.device = next(model.G.parameters()).device
        self._batcher = Batcher(self._forward, ("edit",), batch_max, batch_wait_ms)

    @classmethod
    def from_checkpoint(
        cls, path: str, device: str = "cpu", batch_max: int = 16, batch_wait_ms: float = 2.0
    ) -> EditNetEngine:
        return cls(load_editor(path, device), batch_max, batch_wait_ms)  # D: the optimised edit's realism

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    @property
    def geometry(self) -> FaceGeometry:
        return self.model.geometry

    @property
    def attribute_names(self) -> list[str]:
        return list(self.cfg.attributes)

    @property
    def default_strength(self) -> float:
        return float(self.model.meta.get("default_strength", 1.0))

    def regions(self, name: str) -> tuple[str, ...]:
        """Where in the head an attribute's edit may act (models/areas.py's regions)."""
        return regions_of(name) if self.cfg.regions else ("head",)

    def difference(self, edits: Sequence[tuple[str, float]]) -> Tensor:
        """The difference vector (K,) of checked edits: strength x the scale calibrated for adding the
        attribute (strength > 0) or taking it away (< 0), summed per name."""
        d = torch.zeros(len(self.cfg.attributes))
        for name, strength in edits:
            try:
                d[self.cfg.attributes.index(name)] += float(strength) * self.model.scale(name, remove=strength < 0)
            except ValueError:
                raise InvalidParameter(f"unknown attribute {name!r}; valid names: {self.attribute_names}") from None
        return d

    def edit(self, crops: np.ndarray, d: Tensor, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Aligned crops (B, S, S, 3) uint8 and differences (B, K) -> the edited crops (B, S, S, 3)
        uint8 and the edit's mask (B, S, S) float32 in [0, 1]. A dim crop is edited lifted to the
        light the editor knows and its change brought back down (`exposure_gain`, read where `valid`)."""
        gain = exposure_gain(crops, valid)
        lifted = lift(crops, gain)
        out = self._batcher.submit("edit", torch.from_numpy(lifted), d.float().cpu())
        return bring_down(crops, lifted, to_uint8(out[:, :3]).numpy(), gain), out[:, 3].numpy()

    @torch.inference_mode()
    def _forward(self, kind: str, data: tuple[Tensor, ...]) -> Tensor:
        crops, d = (t.to(self.device) for t in data)
        edited, mask = self.model.G(from_uint8(crops), d)
        return torch.cat([edited, mask], 1).float().cpu()  # (B, 4, S, S): one tensor to split per caller

    def warm_up(self) -> None:
        size = self.image_size
        self.edit(np.full((1, size, size, 3), 128, np.uint8), torch.ones(1, len(self.cfg.attributes)))

    def close(self) -> None:
        self._batcher.close()


def prepare_photo(engine: EditNetEngine, photo: Photo, *, face: int = 0, aligned: bool = False) -> Encoded:
    """The photo's `face`-th largest face (or the whole image, when it is an `aligned` crop) in
    the editor's crop: all the editor needs of an upload. Not stored."""
    crop, box, boxes = faces.face_crop(photo.pixels, engine.image_size, engine.geometry, face=face, aligned=aligned)
    return Encoded(new_id(), torch.zeros(0), crop, photo, faces.is_grayscale(photo.pixels), box, boxes, None)


def edited_region(engine: EditNetEngine, enc: Encoded, d: Tensor) -> Region:
    """The face's rectangle of the photo with the edit."""
    return pasted_region(enc, edited_crop(engine, enc, d))


def pasted_region(enc: Encoded, edited: np.ndarray) -> Region:
    """The face's rectangle of the photo with an edited crop (S, S, 3) uint8 pasted as a change: the
    photo's own pixels + (edited - crop), which is 0 wherever the edit's mask is."""
    assert enc.photo is not None and enc.aligned is not None
    delta = edited.astype(np.float32) - enc.aligned.pixels.astype(np.float32)
    valid = enc.aligned.valid.astype(np.float32)
    return change_region(enc.photo.pixels, delta, valid, enc.aligned.matrix, enc.grayscale)


def edited_crop(engine: EditNetEngine, enc: Encoded, d: Tensor) -> np.ndarray:
    """The edited crop (S, S, 3) uint8 of a face."""
    assert enc.aligned is not None
    return engine.edit(enc.aligned.pixels[None], d[None], enc.aligned.valid[None])[0][0]
