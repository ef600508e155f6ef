"""Calibration: what strength 1 of each attribute is, chosen on held-out faces.

Each direction's area (where in the face it acts) and its lengths for adding and removing
are chosen so that strength 1, applied as the service applies it (the face + mask *
(G(z + v) - G(z))), keeps the person in >= 95% of held-out faces, then of whole photos
(dlib's identity judge, when installed) and, within that, moves `reach` of them to the
other side of the attribute by the classifier's judgement, or as many as it can.
Calibration faces are people `evaluate` does not judge. The result of each attribute is a
`models.edits.Calibration`, written into the checkpoint through that type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from models.areas import HEAD, Area
from models.checkpoint import FaceModel
from models.edits import Calibration
from models.pixels import from_uint8, to_uint8
from training.classifier import AttributeClassifier
from training.identity import SAME_PERSON
from training.photos import PhotoJudge
from worker.pipeline.composite import edited_crop


@torch.no_grad()
def applied_edit(model: FaceModel, x: Tensor, z: Tensor, offset: Tensor, area: Area = HEAD) -> Tensor:
    """What the service returns for aligned faces x (B, 3, S, S): x + mask * (G(z + offset) - G(z)),
    composited by the service's own code (`edited_crop`), in uint8 pixels as its answers are."""
    renders = to_uint8(model.G(torch.cat([z, z + offset])).cpu()).numpy()  # (2B, S, S, 3)
    base, edited = renders[: len(z)], renders[len(z) :]
    crops = to_uint8(x.cpu()).numpy()
    out = [edited_crop(c, b, e, area, model.geometry) for c, b, e in zip(crops, base, edited, strict=True)]
    return from_uint8(torch.from_numpy(np.stack(out))).to(x.device)


# Step lengths tried, in latent units (a typical z has norm ~10), and the areas an edit may
# act on (see models.areas.change_mask): the whole head with three mask focuses, or one
# region. Longer steps and looser masks reach more attributes by the classifier's count, but
# past a point the person is lost (MODEL_CARD.md has the trade-off).
LENGTHS = (2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0)
# The conditional family's attributes it was trained on move along y, in label units: 2 takes a
# face from -1 (has not) to +1 (has); a little past that is allowed, far past is extrapolation.
LABEL_LENGTHS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
AREAS: tuple[Area, ...] = (
    HEAD,
    Area(focus=(0.1, 0.35)),
    Area(focus=(0.25, 0.6)),
    *(Area(regions=(r,)) for r in ("face", "hair", "eyes", "mouth")),
)
SAME_PERSON_SHARE = 0.95  # identity first: no calibrated edit may change more people than 5%
MIN_SIDE_FACES = 12  # judged faces needed to give adding and removing lengths of their own


class CropIdentity:
    """The identity judge on aligned crops (the face is where the crop puts it), on the first
    `n` faces: dlib's descriptor is the slow part of the calibration."""

    def __init__(self, x: Tensor, n: int = 48) -> None:
        import dlib

        from training.identity import IdentityJudge

        self.judge, self.rect = IdentityJudge(), dlib.rectangle(40, 40, 216, 216)  # the face in 256 px
        self.n = min(n, len(x))
        self.ref = [self.judge.descriptor(self._up(xi), self.rect) for xi in x[:n]]

    @staticmethod
    def _up(x: Tensor) -> np.ndarray:
        img = to_uint8(x[None].float().cpu())[0].numpy()
        return np.ascontiguousarray(cv2.resize(img, (256, 256), interpolation=cv2.INTER_CUBIC))

    def same_share(self, y: Tensor, group: Tensor | None = None) -> float:
        """The share of the judged faces (those in `group`, a (B,) bool, if given) still the same person."""
        chosen = range(self.n) if group is None else torch.nonzero(group[: self.n]).flatten().tolist()
        d = [np.linalg.norm(self.judge.descriptor(self._up(y[i]), self.rect) - self.ref[i]) for i in chosen]
        return float(np.mean(np.array(d) < SAME_PERSON))


@dataclass(frozen=True)
class Setting:
    length: float
    area: Area
    reached: float
    same: float  # share of faces still the same person (1.0 without the judge)

    @property
    def kept(self) -> bool:
        return self.same >= SAME_PERSON_SHARE


def longest_kept(lengths: list[float], same_at: Callable[[float], float]) -> list[tuple[float, float]]:
    """The (length, share kept) pairs asked while finding the longest of `lengths` (ascending)
    that keeps the person: the longest first, then by halves, since identity only falls as the
    step grows. The judge is the slow part of calibration; this asks it about log2(n) times."""
    asked: dict[float, float] = {}

    def kept(i: int) -> bool:
        asked[lengths[i]] = same_at(lengths[i])
        return asked[lengths[i]] >= SAME_PERSON_SHARE

    lo, hi = -1, len(lengths) - 1  # lengths[lo] keeps the person (or lo = -1); lengths[hi] does not
    if not kept(hi):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if kept(mid) else (lo, mid)
    return list(asked.items())


def best_setting(tried: list[Setting], reach: float) -> Setting:
    """Identity first: among the settings that keep the person, the one that keeps it best
    among those reaching `reach` (then the shorter), else the one reaching most; when none
    keeps it, the one that keeps it best."""
    kept = [t for t in tried if t.kept]
    if not kept:
        return max(tried, key=lambda t: (t.same, -t.length))
    good = [t for t in kept if t.reached >= reach]
    if good:
        return max(good, key=lambda t: (t.same, -t.length))
    return max(kept, key=lambda t: (t.reached, t.same, -t.length))


@dataclass
class Calibrator:
    """Strength 1 (step lengths) and area of each attribute, chosen on held-out faces x with
    latents z, as the service applies edits.

    Every face is pushed to the other side of the attribute (by the classifier's view of it).
    The area is chosen on all faces; then adding and removing the attribute each get their own
    length (a smile is added by a shorter step than it is taken away), when enough judged faces
    are on that side. For each try the classifier's count is cheap and the identity judge is
    not: it is asked at the shortest length reaching `reach` (or the one reaching most), then
    by halves at shorter ones (`longest_kept`). `best_setting` picks among those. Last, with
    `photos`, each side's length is checked as the service answers, on whole photos, and
    shortened until the person is kept there too.
    """

    model: FaceModel
    clf: AttributeClassifier
    x: Tensor
    z: Tensor
    reach: float
    identity: CropIdentity | None = None
    photos: PhotoJudge | None = None
    label_axes: tuple[int, ...] = ()  # attributes whose direction is a label axis of a conditional G
    lengths: tuple[float, ...] = LENGTHS  # the lengths tried for the attribute being calibrated

    @torch.no_grad()
    def attribute(self, k: int) -> Calibration:
        assert self.model.directions is not None
        self.lengths = LABEL_LENGTHS if k in self.label_axes else LENGTHS
        v = self.model.directions[k]
        unit, has = v / v.norm(), self.clf(self.x)[:, k] > 0
        away = torch.where(has, -1.0, 1.0)[:, None] * unit  # (B, nz): towards the other side
        everyone = torch.ones_like(has)
        area = best_setting(self.search(k, away, has, AREAS, everyone), self.reach).area
        judged = self.identity.n if self.identity else len(has)
        lengths = {}
        for side, group in (("length", ~has), ("remove_length", has)):
            if int(group[:judged].sum()) >= MIN_SIDE_FACES:
                lengths[side] = best_setting(self.search(k, away, has, (area,), group), self.reach).length
        if len(lengths) < 2:  # too few faces on a side: one length for both, chosen on all
            both = best_setting(self.search(k, away, has, (area,), everyone), self.reach).length
            lengths = {side: lengths.get(side, both) for side in ("length", "remove_length")}
        checked = self.check_on_photos(k, unit, area, lengths) if self.photos else {}
        y = applied_edit(
            self.model,
            self.x,
            self.z,
            away * torch.where(has, lengths["remove_length"], lengths["length"])[:, None],
            area,
        )
        self.model.directions[k] = unit * lengths["length"]
        return Calibration(
            length=lengths["length"],
            remove_length=lengths["remove_length"],
            area=area,
            reached=float(((self.clf(y)[:, k] > 0) != has).float().mean()),
            same_person=self.identity.same_share(y) if self.identity else 1.0,
            same_person_photos=checked,
        )

    def check_on_photos(self, k: int, unit: Tensor, area: Area, lengths: dict[str, float]) -> dict[str, float]:
        """Shorten each side's length until the person is kept on whole photos; the shares kept."""
        assert self.photos is not None
        kept = {}
        for side, sign in (("length", 1.0), ("remove_length", -1.0)):
            group = self.photos.has[:, k] == (sign < 0)  # photos on this side's start
            if int(group.sum()) < MIN_SIDE_FACES:
                continue  # too few photos to judge: the crops' length stands
            direction = sign * unit

            def same_at(length: float, direction: Tensor = direction, group: Tensor = group) -> float:
                assert self.photos is not None
                return self.photos.same_share(length * direction, area, group)

            asked = longest_kept([n for n in self.lengths if n <= lengths[side]], same_at)
            ok = [(n, same) for n, same in asked if same >= SAME_PERSON_SHARE] or [min(asked)]
            lengths[side], kept[side] = max(ok)
        return kept

    def search(self, k: int, away: Tensor, has: Tensor, areas: tuple[Area, ...], group: Tensor) -> list[Setting]:
        """Settings tried for attribute k in `areas`, reach and identity judged on the faces in `group`."""
        tried: list[Setting] = []
        for area in areas:
            edited = {n: applied_edit(self.model, self.x, self.z, n * away, area) for n in self.lengths}
            reached = {n: float(((self.clf(y)[:, k] > 0) != has)[group].float().mean()) for n, y in edited.items()}
            best_so_far = max((t.reached for t in tried if t.kept), default=-1.0)
            if max(reached.values()) <= best_so_far and best_so_far < self.reach:
                continue  # cannot beat what is already kept
            enough = [n for n in self.lengths if reached[n] >= self.reach]
            top = enough[0] if enough else max(self.lengths, key=lambda n: (reached[n], -n))

            def same_at(length: float, edited: dict[float, Tensor] = edited) -> float:
                return self.identity.same_share(edited[length], group) if self.identity else 1.0

            for length, same in longest_kept([n for n in self.lengths if n <= top], same_at):
                tried.append(Setting(length, area, reached[length], same))
        return tried


def calibrate(cal: Calibrator, names: list[str], only: tuple[str, ...] = ()) -> dict[str, Calibration]:
    """Calibrate every attribute with a direction (or those in `only`); their lengths are written into the model."""
    assert cal.model.directions is not None
    return {
        name: cal.attribute(k)
        for k, name in enumerate(tqdm(names, desc="calibrating", unit="attribute"))
        if float(cal.model.directions[k].norm()) > 0 and (not only or name in only)
    }
