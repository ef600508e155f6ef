"""Custom attributes: a new edit from a few photos with and without a look."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import torch

from models.areas import Area
from models.edits import Calibration, Direction
from models.latent_math import RefineOptions, orthogonalize
from worker.pipeline.encoded import new_id
from worker.pipeline.engines import AnyEngine, latent_engine
from worker.pipeline.errors import InvalidParameter, NotFound, ServiceError
from worker.service.library import FaceLibrary
from worker.service.settings import CoreSettings
from worker.service.store import Store, key

PREFIX = "custom-"  # ids of custom attributes, usable wherever an attribute name is
EXAMPLES = (3, 12)  # photos with, and without, the look
AREA = Area(focus=(0.1, 0.35))  # the whole head, a middle focus: the look changes, the person stays
REFINE = RefineOptions(steps=20, budget_s=0.3)  # many faces per request: a shorter refinement


@dataclass(frozen=True)
class CustomAttribute:
    id: str
    name: str
    direction: list[float]  # (latent_size,): strength 1, as long as a typical built-in direction
    keep: list[str]  # built-in attributes it was made orthogonal to
    faces_with: int
    faces_without: int
    expires_in_s: int

    def edit(self) -> Direction:
        v = torch.tensor(self.direction, dtype=torch.float32)
        return Direction(self.id, v, Calibration.assumed(v, AREA))


class CustomAttributes:
    def __init__(self, engine: AnyEngine, store: Store, library: FaceLibrary, settings: CoreSettings) -> None:
        self.engine, self.store, self.library, self.settings = engine, store, library, settings

    def create(
        self, name: str, with_photos: list[bytes], without_photos: list[bytes], keep: list[str]
    ) -> CustomAttribute:
        """The difference of the mean latents of the photos with and without the look,
        orthogonalised against the built-in attributes in `keep`, as long as a typical
        calibrated built-in direction; stored under a new id with its TTL."""
        engine = latent_engine(self.engine, "a custom attribute (a direction between example latents)")
        lo, hi = EXAMPLES
        for label, group in (("with", with_photos), ("without", without_photos)):
            if not lo <= len(group) <= hi:
                raise InvalidParameter(f"send {lo} to {hi} photos {label} the look, got {len(group)}")
        names = engine.attribute_names
        unknown = [k for k in keep if k not in names]
        if unknown:
            raise InvalidParameter(f"keep: unknown attribute(s) {unknown}", valid=names)
        latents = {}
        for label, group in (("with", with_photos), ("without", without_photos)):
            zs = []
            for i, data in enumerate(group):
                try:
                    with self.library.uploaded(data, refine=REFINE, keep=False) as enc:
                        zs.append(enc.z)
                except ServiceError as e:
                    raise type(e)(f"photo {i + 1} {label} the look: {e.message}", **e.detail) from e
            latents[label] = torch.stack(zs)
        v = latents["with"].mean(0) - latents["without"].mean(0)
        others = torch.stack([engine.direction(k) for k in keep]) if keep else torch.zeros(0, len(v))
        v = orthogonalize(v, others)
        if float(v.norm()) == 0:
            raise InvalidParameter(
                "the photos with and without the look encode to the same place; use clearer examples"
            )
        attribute = CustomAttribute(
            id=PREFIX + new_id(),
            name=name,
            direction=(v / v.norm() * engine.typical_length).tolist(),
            keep=keep,
            faces_with=len(with_photos),
            faces_without=len(without_photos),
            expires_in_s=self.settings.custom_attribute_ttl_s or self.settings.latent_ttl_s,
        )
        self.store.put(key("attribute", attribute.id), json.dumps(asdict(attribute)).encode(), attribute.expires_in_s)
        return attribute

    def get(self, attribute_id: str) -> CustomAttribute:
        raw = self.store.get(key("attribute", attribute_id))
        if raw is None:
            raise NotFound(f"unknown or expired custom attribute {attribute_id!r}; create it again")
        record: dict[str, Any] = json.loads(raw)
        fields = CustomAttribute.__dataclass_fields__
        return CustomAttribute(**{k: v for k, v in record.items() if k in fields})  # older records: an area too
