"""Edits of faces: attribute names to one edit, rendered or composited into the photo.

With a latent model the edit is one latent offset (and the area it acts on), rendered by G and
composited as a change; with the image-to-image editor it is one difference vector, and the
editor's own output, masked, is the change (worker.pipeline.editnet).

Within one request data flows one way: an upload is decoded once, and the photo, the
aligned face and z stay in memory until the answer is encoded. The store receives only what
a later request needs and is read only by later requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from models.edits import Direction, LatentEdit, latent_edit
from models.latent_math import lerp, slerp
from worker.pipeline import editnet
from worker.pipeline.composite import Blend, Region, edited_region
from worker.pipeline.composite import paste as paste_region
from worker.pipeline.editnet import EditNetEngine
from worker.pipeline.encoded import Encoded
from worker.pipeline.engine import Engine
from worker.pipeline.engines import AnyEngine, latent_engine
from worker.pipeline.errors import InvalidParameter, NotAcceptable
from worker.pipeline.images import FORMAT_OF, encode_like, own_media_type, png_bytes
from worker.service.attributes import ORDER, describe
from worker.service.custom import PREFIX, CustomAttributes
from worker.service.library import FaceLibrary
from worker.service.settings import CoreSettings

Edits = list[tuple[str, float]]  # (attribute name or custom id, strength)


@dataclass(frozen=True)
class Output:
    """How an answer photo is encoded. By default exactly as today: the whole photo in the
    upload's own format. `accept` (the client's media types, preferred first; empty: anything)
    may ask for a cheaper one (a JPEG of a PNG upload); `tile` answers only the rectangle the
    edit touched, for a page that composites it over the photo it already shows."""

    accept: tuple[str, ...] = ()
    tile: bool = False

    def media_type(self, own: str) -> str:
        if not self.accept or own in self.accept or {"*/*", "image/*"} & set(self.accept):
            return own
        for t in self.accept:
            if t in FORMAT_OF:
                return t
        raise NotAcceptable(f"answers are image/jpeg, image/webp or image/png; Accept asked for {list(self.accept)}")


@dataclass(frozen=True)
class Rendered:
    """An answer image: its bytes and media type, the face's latent id, whether it is the photo,
    and for a tile its box (x0, y0, x1, y1) in a photo of `photo_size` (width, height)."""

    data: bytes
    media_type: str
    latent_id: str
    pasted: bool
    box: tuple[int, int, int, int] | None = None
    photo_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class AttributeListing:
    """A built-in attribute as the page lists it: what it does, its training label counts,
    where it acts and what strength 1 did on held-out faces when it was calibrated."""

    name: str
    description: str
    with_count: int | None
    without_count: int | None
    regions: tuple[str, ...]
    reached: float | None
    same_person: float | None


class Editor:
    def __init__(
        self, engine: AnyEngine, library: FaceLibrary, custom: CustomAttributes, settings: CoreSettings
    ) -> None:
        self.engine, self.library, self.custom, self.settings = engine, library, custom, settings

    @property
    def default_strength(self) -> float:
        return self.engine.default_strength

    def check(self, edits: Edits, *, custom: bool = True) -> None:
        """Names known (built-in, or custom ids when `custom`), bounded count and strengths."""
        names = self.engine.attribute_names
        custom = custom and not isinstance(self.engine, EditNetEngine)  # the editor has no custom directions
        unknown = [a for a, _ in edits if a not in names and not (custom and a.startswith(PREFIX))]
        if unknown:
            hint = " or a custom attribute id" if custom else " (custom attributes: /edit only, latent models)"
            raise InvalidParameter(f"unknown attribute(s) {unknown}; valid names: {names}{hint}", valid=names)
        if len(edits) > self.settings.max_edits:
            raise InvalidParameter(f"at most {self.settings.max_edits} attributes per edit")
        bound = self.settings.max_strength
        bad = [(a, s) for a, s in edits if not -bound <= s <= bound or not np.isfinite(s)]
        if bad:
            raise InvalidParameter(f"strength must be within [-{bound}, {bound}], got {bad}")

    def latent_edit(self, edits: Edits) -> LatentEdit:
        """Checked edits, built-in or custom, as one latent offset and the area it acts on."""
        self.check(edits)
        engine = latent_engine(self.engine, "a latent edit")
        return latent_edit([(self._direction(engine, a), s) for a, s in edits], engine.cfg.latent_size)

    def _direction(self, engine: Engine, name: str) -> Direction:
        return self.custom.get(name).edit() if name.startswith(PREFIX) else engine.attribute(name)

    def edit(
        self,
        edits: Edits,
        *,
        paste: bool | None = None,
        blend: Blend = "change",
        latent_id: str | None = None,
        upload: bytes | None = None,
        face: int = 0,
        aligned: bool = False,
        refine: bool = True,
        output: Output = Output(),  # noqa: B008 - frozen
    ) -> Rendered:
        """The edited face, or by default the user's whole photo with the edit applied.

        The face is an upload, encoded first (and kept in memory for the rest of the request),
        or an earlier latent id; edits are checked before any work is done. `paste=None`
        answers the whole photo when the face came from one; `output` says how it is encoded.
        """
        change: LatentEdit | torch.Tensor  # the latent offset and area, or the editor's difference vector
        if isinstance(self.engine, EditNetEngine):
            self.check(edits)
            if blend != "change":
                raise InvalidParameter("blend=generated needs a latent model: the editor's answer is your photo")
            change = self.engine.difference(edits)
        else:
            change = self.latent_edit(edits)
        if upload is not None:
            opened = self.library.uploaded(upload, face=face, aligned=aligned, refine=self.library.refinement(refine))
        elif latent_id is not None:
            opened = self.library.stored(latent_id, with_photo=paste is not False)
        else:
            raise InvalidParameter("send an image file or a latent_id")
        with opened as enc:
            if paste is None:
                paste = enc.photo is not None
            if not paste:
                return Rendered(png_bytes(self._face(enc, change)), "image/png", enc.latent_id, False)
            if enc.photo is None or enc.aligned is None:
                raise InvalidParameter("paste=true needs a face encoded from an uploaded photo (not a generated face)")
            media_type = output.media_type(own_media_type(enc.photo))
            region = self._region(enc, change, blend)
            h, w = enc.photo.pixels.shape[:2]
            if output.tile:
                data, media_type = encode_like(region.pixels, enc.photo, media_type, region.box)
                return Rendered(data, media_type, enc.latent_id, True, region.box, (w, h))
            data, media_type = encode_like(paste_region(enc.photo.pixels, region), enc.photo, media_type)
            return Rendered(data, media_type, enc.latent_id, True, None, (w, h))

    def _face(self, enc: Encoded, change: LatentEdit | torch.Tensor) -> np.ndarray:
        """The model's own edited face (S, S, 3) uint8: G(z + offset), or the editor's crop."""
        if isinstance(self.engine, EditNetEngine):
            assert isinstance(change, torch.Tensor)
            if enc.aligned is None:
                raise InvalidParameter("this face has no crop to edit; encode the photo again")
            return editnet.edited_crop(self.engine, enc, change)
        assert isinstance(change, LatentEdit)
        return self.engine.render(enc.z[None] + change.offset)[0]

    def _region(self, enc: Encoded, change: LatentEdit | torch.Tensor, blend: Blend) -> Region:
        """The face's rectangle of the photo with the edit."""
        if isinstance(self.engine, EditNetEngine):
            assert isinstance(change, torch.Tensor)
            return editnet.edited_region(self.engine, enc, change)
        assert isinstance(change, LatentEdit)
        return edited_region(self.engine, enc, enc.z[None] + change.offset, blend, change.area)

    def interpolate(
        self, from_id: str, to_id: str, *, steps: int, method: Literal["slerp", "linear"], edits: Edits | None = None
    ) -> np.ndarray:
        """`steps` faces from one encoded face to another, each with the same edits applied."""
        engine = latent_engine(self.engine, "morphing between faces")
        offset = self.latent_edit(edits or []).offset
        with self.library.stored(from_id) as a, self.library.stored(to_id) as b:
            z0, z1 = a.z, b.z
        path = (slerp if method == "slerp" else lerp)(z0, z1, torch.linspace(0, 1, steps))
        return engine.render(path + offset)

    def attributes(self) -> list[AttributeListing]:
        """The built-in attributes, most useful first."""
        names = sorted(self.engine.attribute_names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
        if isinstance(self.engine, EditNetEngine):
            cals, regions = self.engine.model.calibrations, self.engine.regions
            return [
                AttributeListing(n, describe(n), None, None, regions(n),
                                 cals[n].reached if n in cals else None, cals[n].same_person if n in cals else None)
                for n in names
            ]  # fmt: skip
        counts = self.engine.model.typed_meta.label_counts
        listed = []
        for n in names:
            cal = self.engine.model.calibrations.get(n)
            count = counts.get(n)
            listed.append(
                AttributeListing(
                    name=n,
                    description=describe(n),
                    with_count=count.with_label if count else None,
                    without_count=count.without_label if count else None,
                    regions=self.engine.attribute(n).calibration.area.regions,
                    reached=cal.reached if cal else None,
                    same_person=cal.same_person if cal else None,
                )
            )
        return listed
