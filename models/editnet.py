"""The image-to-image editor: an encoder-decoder that edits an aligned face directly.

The AttGAN / STGAN / SaGAN line (He et al. 2019, Liu et al. 2019, Zhang et al. 2018). The
encoder reads the face down to a 4 x 4 bottleneck; the decoder climbs back up with the
attribute *difference* vector d (STGAN: +1 add, -1 remove, 0 keep; strength scales it) tiled
and concatenated at every scale, and skip connections from the encoder on the coarse scales.
Its last layer draws a colour c and a mask m, and the answer is the input where m is 0:

    out = x + g * m * (c - x),   m = clamp(1.1 * sigmoid(l) - 0.05, 0, 1),   g = min(1, max_k |d_k|)

(GANimation's attention, SaGAN's spatial mask); with `residual`, c = tanh(atanh(x) + r): the
network draws a change r of the input's own colour, not a new colour. With `regions`, the gate
is a place too: each attribute may act only in its region of the crop (EDITOR_REGIONS: glasses
around the eyes and, when added, only as frames you see the eyes through; a smile at the mouth,
with `cheeks` on the cheeks and the chin too; a hair colour on the hair and not the face; the
whole head for Male and Young), and every region fades to 0 at the crop's border, so

    g(p) = max_k min(1, |d_k|) * R_k(p)    (R_k: where attribute k may act, added or removed)

and nothing outside the asked attributes' regions can move, whatever the network learns, and
no edit can show the crop's square in a photo. The mask reaches exactly 0 (its gradient passes
the clamp straight through, so a closed mask can open again), so what an edit does not touch
stays the input pixel for pixel, and the mask says where the edit acted: the service
pastes by it and chooses the crop from it. The gate g makes strength 0 the input itself and a
strength below 1 a partial blend; reconstruction (AttGAN's L1 at a zero difference) is asked
of the colour c, so the decoder still learns to draw the face it was given.

Model code imports torch and numpy (the regions come from models/areas.py); the checkpoint is
`model.safetensors` (`G.*`, the EMA editor, optionally `D.*`) + `config.json` with family
"editnet" (models/checkpoint.py reads the format).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from models.geometry import CELEBA_HEAD

# What the editor edits, most asked for first: the five the product is judged on, then the
# rest of AttGAN's thirteen that CelebA labels well.
EDITOR_ATTRIBUTES = (
    "Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young", "Black_Hair", "Brown_Hair", "Bangs",
    "No_Beard", "Mustache", "Bald", "Pale_Skin", "Mouth_Slightly_Open",
)  # fmt: skip

# The colours (the hair's, the skin's pallor): what an old config's `neutral: true` left its hue
COLOUR_ATTRIBUTES = ("Blond_Hair", "Black_Hair", "Brown_Hair", "Gray_Hair", "Pale_Skin")

HEAD_GEOMETRY = CELEBA_HEAD  # the editor's crop: the head with its hair (models/geometry.py)

# Where each attribute may act (models/areas.py's regions of the crop), with `regions`; an
# attribute not listed may act on the whole head.
EDITOR_REGIONS: dict[str, tuple[str, ...]] = {
    "Smiling": ("mouth",), "Mouth_Slightly_Open": ("mouth",), "Mustache": ("mouth",),
    "Eyeglasses": ("eyes",),
    "Blond_Hair": ("hair",), "Black_Hair": ("hair",), "Brown_Hair": ("hair",), "Gray_Hair": ("hair",),
    "Bald": ("hair",), "Pale_Skin": ("face",),
}  # fmt: skip


def regions_of(attribute: str) -> tuple[str, ...]:
    """Where an attribute may act with `regions` (models/areas.py's names): EDITOR_REGIONS, else the head."""
    return EDITOR_REGIONS.get(attribute, ("head",))


def attribute_regions(attributes: tuple[str, ...], size: int, cheeks: bool = False) -> Tensor:
    """(2, K, 1, S, S) in [0, 1]: where each attribute may act in the editor's S x S crop when it is
    added (0) and when it is removed (1). The same, but glasses are added only as frames: two rims,
    a bridge and the temples' start (`_frames`), the eyes and the skin around them seen through
    (CelebA's Eyeglasses also labels sunglasses, and the guides accept a dark band across the eyes);
    removing them may repaint the whole eye band. With `cheeks` a smile, given or taken, may also
    act on the cheeks and the chin (`_lower_face`): a smile lifts the cheeks and creases them from
    the nose to the mouth's corners, which the mouth's ellipse leaves out."""
    from models.areas import region_mask  # numpy (and cv2 for the service's masks), not needed otherwise

    planes = np.stack([
        np.max([region_mask(HEAD_GEOMETRY, size, r) for r in regions_of(a)], axis=0)
        for a in attributes
    ])  # fmt: skip
    edge = np.minimum(np.arange(size), np.arange(size)[::-1])  # pixels to the nearest border
    if cheeks and "Smiling" in attributes:
        k = attributes.index("Smiling")
        planes[k] = np.maximum(planes[k], _lower_face(size))
    planes *= np.clip(np.minimum.outer(edge, edge) / (size / 16), 0, 1)  # 0 on the border row itself
    added = planes.copy()
    if "Eyeglasses" in attributes:
        added[attributes.index("Eyeglasses")] *= _frames(size)
    return torch.from_numpy(np.stack([added, planes])[:, :, None].astype(np.float32))


def _template(size: int) -> tuple[np.ndarray, float]:
    """The template's five landmarks in an S x S head crop and the distance between its eyes."""
    pts = HEAD_GEOMETRY.template(size).astype(np.float64)
    return pts, float(np.linalg.norm(pts[1] - pts[0]))


def _frames(size: int) -> np.ndarray:
    """(S, S) in [0, 1]: a pair of frames on the template's eyes: two elliptical rims (half-axes 0.42
    and 0.32 eye distances), a bridge between them and the temples' start beside them, each about
    0.12 eye distances thick (2 pixels at 64 px), soft by a pixel."""
    pts, e = _template(size)
    yy, xx = np.mgrid[:size, :size] + 0.5
    a, b, half = 0.42 * e, 0.32 * e, max(0.06 * e, 0.6)  # at least a pixel thick
    # distance to each rim in pixels (|r - 1| times the mean half-axis: close enough near the rim)
    rims = np.min([np.abs(np.hypot((xx - p[0]) / a, (yy - p[1]) / b) - 1) * (a + b) / 2 for p in pts[:2]], axis=0)
    left, right = sorted(pts[:2], key=lambda p: p[0])
    level = (left[1] + right[1]) / 2 - 0.05 * e
    bar = np.abs(yy - level)
    bridge = np.where((xx > left[0] + a - 1) & (xx < right[0] - a + 1), bar, np.inf)
    temples = np.where((xx > left[0] - a - 0.3 * e) & (xx < left[0] - a + 1)
                       | (xx > right[0] + a - 1) & (xx < right[0] + a + 0.3 * e), bar, np.inf)  # fmt: skip
    return np.clip(half + 0.5 - np.minimum(rims, np.minimum(bridge, temples)), 0, 1)


def _lower_face(size: int) -> np.ndarray:
    """(S, S) in [0, 1]: the face's ellipse (models/areas.py's "face") below the lower eyelids: the
    cheeks, the folds from the nose to the mouth's corners, the mouth and the chin."""
    from models.areas import region_mask

    pts, e = _template(size)
    below = (pts[0][1] + pts[1][1]) / 2 + 0.35 * e
    yy = np.mgrid[:size, :size][0] + 0.5
    return region_mask(HEAD_GEOMETRY, size, "face") * np.clip((yy - below) / (size / 16) + 0.5, 0, 1)


@dataclass(frozen=True)
class EditorConfig:
    """Dimensions of an editor; stored in its checkpoint's config.json, so it rebuilds without flags."""

    attributes: tuple[str, ...] = EDITOR_ATTRIBUTES
    image_size: int = 64
    width: int = 32  # channels of the first encoder layer; doubled per scale up to max_width
    max_width: int = 512
    skips: int = 2  # skip connections, counted from the bottleneck up (1 = the 8 x 8 scale)
    d_width: int = 32  # the discriminator's first layer
    regions: bool = False  # each attribute acts only in its region of the crop (EDITOR_REGIONS)
    d_patch: bool = False  # the discriminator also judges each patch (S/8 x S/8 of them), not only the face
    residual: bool = False  # the colour is the input's own, changed (tanh(atanh(x) + r)), not drawn anew
    cheeks: bool = False  # with regions, a smile may act on the cheeks and chin too, not only the mouth
    neutral: tuple[str, ...] = ()  # with residual, these attributes change light and shade alike in every
    # channel, not hue: glasses' rims dark and not blue (True in an old config: every attribute
    # but the colours, COLOUR_ATTRIBUTES)
    family: str = field(default="editnet")

    def __post_init__(self) -> None:
        if self.image_size < 16 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 16, got {self.image_size}")
        if not 0 <= self.skips < self.depth:
            raise ValueError(f"skips must lie in [0, {self.depth - 1}], got {self.skips}")
        if not self.attributes or len(set(self.attributes)) != len(self.attributes):
            raise ValueError("attributes must be distinct names, at least one")
        neutral = self.neutral  # config.json holds a list, an old config a flag
        if isinstance(neutral, bool):  # the flag: every attribute but the colours
            neutral = tuple(a for a in self.attributes if a not in COLOUR_ATTRIBUTES) if neutral else ()
        object.__setattr__(self, "neutral", tuple(neutral))
        unknown = sorted(set(self.neutral) - set(self.attributes))
        if unknown:
            raise ValueError(f"neutral names attributes the editor lacks: {unknown}")
        if self.neutral and not self.residual:
            raise ValueError("neutral changes the input's own colour: it needs residual")
        if self.d_patch and self.image_size < 32:
            raise ValueError(f"d_patch needs image_size >= 32 (the S/8 map of the third layer), got {self.image_size}")
        if self.family != "editnet":
            raise ValueError(f"an EditorConfig is of family 'editnet', got {self.family!r}")

    @property
    def depth(self) -> int:
        """Encoder layers, each halving: S -> 4 x 4."""
        return int(math.log2(self.image_size)) - 2

    def channels(self, level: int) -> int:
        """Channels after encoder layer `level` (0-based)."""
        return min(self.width * 2**level, self.max_width)


def _down(cin: int, cout: int) -> nn.Sequential:
    # GroupNorm, not BatchNorm: an answer does not depend on what else is in the batch
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.GroupNorm(8, cout), nn.LeakyReLU(0.2, True))


def _up(cin: int, cout: int) -> nn.Sequential:
    # nearest upsampling and a 3 x 3 convolution, not a transposed convolution: no checkerboard
    # for the guides to read as texture (Odena et al. 2016)
    return nn.Sequential(
        nn.Upsample(scale_factor=2.0), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(True)
    )


def _tile(d: Tensor, h: Tensor) -> Tensor:
    """d (B, K) as K constant planes beside h (B, C, H, W)."""
    return torch.cat([h, d[:, :, None, None].to(h.dtype).expand(-1, -1, *h.shape[2:])], 1)


class EditNet(nn.Module):
    """(x (B, 3, S, S) in [-1, 1], d (B, K)) -> the edited face (B, 3, S, S) and its mask (B, 1, S, S)."""

    def __init__(self, cfg: EditorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k, n = len(cfg.attributes), cfg.depth
        ch = [cfg.channels(i) for i in range(n)]
        self.down = nn.ModuleList([_down(3 if i == 0 else ch[i - 1], ch[i]) for i in range(n)])
        # up[j] climbs from scale n-1-j to n-2-j; its input is the previous output (+ the skip)
        # + d. The last one ends at S / 2 with ch[0] channels; the head draws at S.
        ups = []
        for j in range(n - 1):
            cin = ch[n - 1 - j] + (ch[n - 1 - j] if 0 < j <= cfg.skips else 0) + k
            ups.append(_up(cin, ch[n - 2 - j]))
        self.up = nn.ModuleList(ups)
        self.skip_at = cfg.skips  # up[j] for 1 <= j <= skips takes encoder level n-1-j
        last = ch[0] + (ch[0] if cfg.skips >= n - 1 else 0) + k
        self.head = nn.Sequential(
            nn.Upsample(scale_factor=2.0), nn.Conv2d(last, ch[0], 3, 1, 1), nn.ReLU(True),
            nn.Conv2d(ch[0] + k, 4, 3, 1, 1),
        )  # fmt: skip
        out_conv = self.head[3]
        assert isinstance(out_conv, nn.Conv2d) and out_conv.bias is not None
        nn.init.constant_(out_conv.bias[3], -2.0)  # start near the identity (m = 0.08)
        if cfg.residual:  # the colour starts as the input itself
            with torch.no_grad():
                out_conv.weight[:3].zero_()
                out_conv.bias[:3].zero_()
        if cfg.neutral:  # which attributes may change hue (rebuilt from the config)
            hued = torch.tensor([float(a not in cfg.neutral) for a in cfg.attributes])
            self.register_buffer("hued", hued, persistent=False)
        if cfg.regions:  # rebuilt from the config, not stored with the weights
            places = attribute_regions(cfg.attributes, cfg.image_size, cfg.cheeks)
            places = places.flatten(0, 1)  # 4-d: channels-last works
            self.register_buffer("places", places, persistent=False)

    def gate(self, d: Tensor) -> Tensor:
        """How far the mask may open for difference d (B, K): min(1, max_k |d_k|) (B, 1, 1, 1), or
        with regions the same per pixel, each attribute in its place for adding or removing it
        (B, 1, S, S)."""
        if not self.cfg.regions:
            return d.abs().clamp(max=1).amax(1)[:, None, None, None]
        places = self.get_buffer("places")
        places = places.to(d).reshape(2, d.shape[1], 1, *places.shape[2:])
        added, removed = d.clamp(0, 1), (-d).clamp(0, 1)  # (B, K)
        per = added[:, :, None, None, None] * places[0] + removed[:, :, None, None, None] * places[1]
        return per.amax(1)

    def draw(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """The colour c (B, 3, S, S) in [-1, 1] and the mask m (B, 1, S, S) the network draws for d,
        before the strength gate. With `residual` the colour is x's own, changed: the decoder, which
        has no skip at the finest scales, cannot redraw a face's detail, and a colour drawn anew is a
        blurred blob wherever the mask opens (hair strands lost under a blond patch); a change keeps
        them (Shen & Liu 2017, residual images for attribute manipulation)."""
        n = self.cfg.depth
        feats = []
        h = x
        for layer in self.down:
            h = layer(h)
            feats.append(h)
        for j, layer in enumerate(self.up):
            if 0 < j <= self.skip_at:
                h = torch.cat([h, feats[n - 1 - j]], 1)
            h = layer(_tile(d, h))
        if self.skip_at >= n - 1:
            h = torch.cat([h, feats[0]], 1)
        h = self.head[2](self.head[1](self.head[0](_tile(d, h))))
        out = self.head[3](_tile(d, h))
        soft = 1.1 * torch.sigmoid(out[:, 3:]) - 0.05
        # exactly 0 (and 1) where clamped, but the gradient is the sigmoid's everywhere (straight
        # through): a mask that closed early can still be opened by the guides
        mask = soft + (soft.clamp(0, 1) - soft).detach()
        if not self.cfg.residual:
            return torch.tanh(out[:, :3]), mask
        r = out[:, :3].float()  # x's own detail, its colour and shading moved by r (r = 0: x itself)
        if self.cfg.neutral:  # the same change in every channel, but where an attribute with hue acts
            light = r.mean(1, keepdim=True)
            r = light + (r - light) * self.gate(d * self.get_buffer("hued").to(d)).float()
        return torch.tanh(torch.atanh(x.float().clamp(-0.995, 0.995)) + r), mask

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """The edit and its mask. The mask is gated by the strength (`gate`): no difference is the
        input itself, and a strength below 1 blends the edit in part."""
        color, mask = self.draw(x, d)
        mask = mask * self.gate(d).to(mask.dtype)
        return x + mask * (color - x), mask

    def edit(self, x: Tensor, d: Tensor) -> Tensor:
        return self(x, d)[0]


class EditorDiscriminator(nn.Module):
    """Realism: (B, 3, S, S) in [-1, 1] -> (B,) logits. No normalisation (R1 keeps it smooth).

    Beside it, AttGAN's classifier: a linear head on the same trunk, fitted on real faces' labels,
    read by the editor as one more guide. It is not frozen: its trunk keeps learning what tells an
    edit from a face, so a texture that satisfies it does not stay cheap.

    With `d_patch`, a third head judges every patch too (PatchGAN, as StarGAN's and GANimation's
    discriminators do): a 1 x 1 convolution on the trunk's S/8 x S/8 map, each logit seeing about
    22 pixels of the face. An edit is small; one logit for the whole face dilutes what a blob over
    the mouth gives away, a patch's logit does not (training/editnet.py weighs the patches by where
    the edit acted)."""

    PATCH_LEVEL = 2  # the trunk's third layer: an S/8 x S/8 map

    def __init__(self, cfg: EditorConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i in range(cfg.depth):
            cout = min(cfg.d_width * 2**i, cfg.max_width)
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            cin = cout
            if i == self.PATCH_LEVEL:
                patch_in = cout
        self.trunk = nn.Sequential(*layers)  # -> (B, cin, 4, 4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cin * 16, cin), nn.LeakyReLU(0.2, True), nn.Linear(cin, 1))
        self.classes = nn.Sequential(nn.Flatten(), nn.Linear(cin * 16, len(cfg.attributes)))
        self.patch = nn.Conv2d(patch_in, 1, 1) if cfg.d_patch else None

    def all(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Realism logits (B,), attribute logits (B, K) and, with `d_patch`, the patches' realism logits
        (B, S/8, S/8), from one pass of the trunk."""
        cut = 2 * (self.PATCH_LEVEL + 1)
        mid = self.trunk[:cut](x)
        h = self.trunk[cut:](mid)
        patches = None if self.patch is None else self.patch(mid)[:, 0]
        return self.head(h)[:, 0], self.classes(h), patches

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))[:, 0]


def mask_terms(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample mask area (mean of m) and total variation (B,), the terms that keep the edit small
    and in one piece."""
    tv = (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean((1, 2, 3)) + (
        mask[..., :, 1:] - mask[..., :, :-1]
    ).abs().mean((1, 2, 3))
    return mask.mean((1, 2, 3)), tv


def flops_per_image(cfg: EditorConfig) -> float:
    """Multiply-adds x 2 of one forward pass of the editor (convolutions only), for budgets."""
    net = EditNet(cfg)
    total = 0.0
    hooks = []

    def count(m: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        weights = sum(p.numel() for name, p in m.named_parameters(recurse=False) if name == "weight")
        total += 2 * out.shape[2] * out.shape[3] * weights  # each weight is used once per output pixel

    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(count))
    with torch.no_grad():
        net(torch.zeros(1, 3, cfg.image_size, cfg.image_size), torch.zeros(1, len(cfg.attributes)))
    for h in hooks:
        h.remove()
    return total


class EditAsGenerator(nn.Module):
    """The editor as an optimiser sees it (the optimised edit, Zhu et al. 2016): a "latent" (B, K + g*g),
    the difference vector and the logits of a coarse g x g gain on the edit's mask, to the edited
    face of x (1, 3, S, S). The gain only narrows the edit where the network put it; with the
    difference it is what `models.latent_math.optimize_latent` moves, under D's realism term and the
    user's brush."""

    def __init__(self, net: EditNet, x: Tensor, grid: int = 16) -> None:
        super().__init__()
        self.net, self.x, self.grid = net, x, grid
        self.k = len(net.cfg.attributes)

    def start(self, d: Tensor, gain: float = 0.95) -> Tensor:
        """The latent of difference d (B, K) with the mask as the network draws it (gain ~1)."""
        logit = torch.logit(torch.tensor(gain))
        return torch.cat([d, logit.expand(len(d), self.grid * self.grid).to(d)], 1)

    def forward(self, z: Tensor) -> Tensor:
        d, logits = z[:, : self.k], z[:, self.k :]
        x = self.x.expand(len(z), -1, -1, -1)
        color, mask = self.net.draw(x, d)
        size = x.shape[-1]
        gain = torch.sigmoid(nn.functional.interpolate(logits.view(-1, 1, self.grid, self.grid), size=size,
                                                       mode="bilinear", align_corners=False))  # fmt: skip
        return x + self.net.gate(d) * gain * mask * (color - x)


__all__ = [
    "EDITOR_ATTRIBUTES", "EDITOR_REGIONS", "HEAD_GEOMETRY", "EditAsGenerator", "EditNet", "EditorConfig",
    "EditorDiscriminator", "attribute_regions", "regions_of",
]  # fmt: skip
