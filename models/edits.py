"""The edit contract: what strength 1 of an attribute means, and edits summed into one.

An attribute's edit is a `Direction`: its latent vector (strength +1 adds the attribute) and
its `Calibration`, what `python -m training attributes` measured for it on held-out faces: how
long a step adding and removing it takes, the `Area` of the crop it acts on, and what strength
1 reached there. The calibration is parsed and checked when a checkpoint loads and written
through this same type, so a checkpoint that says something else is refused at load time, not
at the first request.

`latent_edit` is the one place edits become a latent offset and an area: `/edit`,
interpolation, the optimised-edit job and evaluation all call it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from models.areas import HEAD, Area, union

SIDES = ("length", "remove_length")  # strength +1 and strength -1


@dataclass(frozen=True)
class Calibration:
    """What strength 1 of one attribute is, as calibrated (or assumed, for an uncalibrated one).

    Lengths are in latent units: the step strength +1 takes (adding the attribute) and the one
    strength -1 takes (removing it; a smile is added by a shorter step than it is taken away).
    `reached` and `same_person` are shares of held-out faces, None where never measured;
    `same_person_photos` the share kept on whole photos, per side that was checked.
    """

    length: float
    remove_length: float
    area: Area = HEAD
    reached: float | None = None
    same_person: float | None = None
    same_person_photos: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for side in SIDES:
            value = getattr(self, side)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{side} must be a finite length >= 0, got {value}")
        shares = {"reached": self.reached, "same_person": self.same_person, **self.same_person_photos}
        bad = {k: v for k, v in shares.items() if v is not None and not 0 <= v <= 1}
        if bad:
            raise ValueError(f"shares must lie in [0, 1], got {bad}")
        unknown = set(self.same_person_photos) - set(SIDES)
        if unknown:
            raise ValueError(f"same_person_photos is per side {SIDES}, got {sorted(unknown)}")

    @classmethod
    def assumed(cls, vector: Tensor, area: Area = HEAD) -> Calibration:
        """An uncalibrated direction: strength 1 is the vector itself, both ways, on the whole head."""
        n = float(vector.norm())
        return cls(n, n, area)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Calibration:
        """From a checkpoint's config.json; ValueError (with what is wrong) when malformed."""
        if not isinstance(raw, Mapping) or "length" not in raw:
            raise ValueError(f"a calibration has at least a 'length', got {raw!r}")

        def share(key: str) -> float | None:
            v = raw.get(key)
            return None if v is None else float(v)

        photos = raw.get("same_person_photos", {})
        if not isinstance(photos, Mapping):
            raise ValueError(f"same_person_photos must be an object, got {photos!r}")
        length = float(raw["length"])
        return cls(
            length=length,
            remove_length=float(raw.get("remove_length", length)),
            area=Area.from_json(dict(raw)),
            reached=share("reached"),
            same_person=share("same_person"),
            same_person_photos={str(k): float(v) for k, v in photos.items()},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "remove_length": self.remove_length,
            **self.area.to_json(),
            "reached": self.reached,
            "same_person": self.same_person,
            **({"same_person_photos": dict(self.same_person_photos)} if self.same_person_photos else {}),
        }


@dataclass(frozen=True)
class Direction:
    """One attribute's edit: `vector` (latent_size,) is strength +1; its calibration says the rest."""

    name: str
    vector: Tensor
    calibration: Calibration

    def offset(self, strength: Tensor) -> Tensor:
        """strength (B,) -> latent offsets (B, latent_size): linear on each side, strength -1
        taking the calibrated removing length (`remove_length / length` of the vector)."""
        cal = self.calibration
        remove = cal.remove_length / cal.length if cal.length > 0 else 1.0
        strength = strength.to(self.vector.device, self.vector.dtype)
        return (strength * torch.where(strength < 0, remove, 1.0))[:, None] * self.vector


@dataclass(frozen=True)
class LatentEdit:
    """Edits summed: the offset to add to a face's latent and the area its change may act on."""

    offset: Tensor  # (latent_size,)
    area: Area


def latent_edit(edits: Sequence[tuple[Direction, float]], latent_size: int) -> LatentEdit:
    """Σ strength · direction (each side at its calibrated length) and where they act together:
    the union of the areas of the edits with a non-zero strength (the whole head for none)."""
    offset = torch.zeros(latent_size)
    for d, s in edits:
        offset += d.offset(torch.tensor([float(s)]))[0].cpu()
    return LatentEdit(offset, union(d.calibration.area for d, s in edits if s != 0))
