"""Train/test transforms that move the image, its landmarks and its AU centres together.

ME-GraphAU (its dataset transforms): train = random 224 crop of the 256 crop → random horizontal flip →
ColorJitter(brightness 0.4, contrast 0.4, saturation 0.4, hue 0) → ImageNet normalisation; test = centre
224 crop → normalisation. The geometric part is drawn once per sample (:class:`Geometry`) and applied to
pixels, landmarks (mirrored with ``MIRROR_68``) and AU centres (left/right sides swapped), so heatmaps
rendered from the moved centres match the moved image exactly.

Randomness comes from torch's generator, so DataLoader workers get distinct, seedable streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from au_ttt.data.au_regions import AU_CENTRE_RULES, MIRROR_68

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "Geometry", "PhotometricTransform", "apply_centres", "apply_image",
    "apply_points", "flip_maps", "sample_geometry",
]

# ME-GraphAU / torchvision ImageNet statistics; timm's constants, so the model's GreyStandardize undoes
# exactly this normalisation
IMAGENET_MEAN, IMAGENET_STD = IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


@dataclass(frozen=True)
class Geometry:
    """Crop offset (x, y) into the aligned crop, crop side, and whether to mirror horizontally."""

    ox: int
    oy: int
    size: int
    flip: bool


def sample_geometry(crop_size: int, input_size: int, train: bool,
                    generator: torch.Generator | None = None, shift: bool = True) -> Geometry:
    """Random offset + coin-flip mirror for training; the centre crop without flip for testing.

    ``shift=False`` keeps the centre offset while training (mirror only): a patch-16 ViT trained from
    scratch on a few subjects must otherwise learn each texture at every sub-patch phase.
    """
    span = crop_size - input_size
    if not train:
        return Geometry(span // 2, span // 2, input_size, False)
    offset = torch.randint(0, span + 1, (2,), generator=generator) if shift else torch.full((2,), span // 2)
    ox, oy = (int(v) for v in offset)
    flip = bool(torch.rand((), generator=generator) < 0.5)
    return Geometry(ox, oy, input_size, flip)


def apply_image(image: np.ndarray, g: Geometry) -> np.ndarray:
    """Crop (and mirror) an (H, W, C) image."""
    out = image[g.oy:g.oy + g.size, g.ox:g.ox + g.size]
    if out.shape[:2] != (g.size, g.size):
        raise ValueError(f"image {image.shape[:2]} too small for a {g.size} crop at ({g.ox}, {g.oy})")
    return np.ascontiguousarray(out[:, ::-1] if g.flip else out)


def _move_x(x: np.ndarray, g: Geometry) -> np.ndarray:
    # pixel column j ↦ size − 1 − j under a mirror (0-based pixel-centre coordinates)
    return (g.size - 1) - x if g.flip else x


def apply_points(points: np.ndarray, g: Geometry) -> np.ndarray:
    """Landmarks (68, 2) into the crop; a mirror also renumbers them (left eye ↔ right eye, …)."""
    out = np.asarray(points, np.float32) - np.array([g.ox, g.oy], np.float32)
    if g.flip:
        out = out[MIRROR_68]
        out[:, 0] = _move_x(out[:, 0], g)
    return out


def _mirrors_onto_each_other(a: int | tuple[int, ...], b: int | tuple[int, ...]) -> bool:
    sa, sb = (set(x) if isinstance(x, tuple) else {x} for x in (a, b))
    return {int(MIRROR_68[i]) for i in sa} == sb


def apply_centres(centres: np.ndarray, g: Geometry, aus: tuple[int, ...] | list[int] | None = None
                  ) -> np.ndarray:
    """AU centres (n_AU, 2, 2) into the crop.

    A mirror also exchanges the two centres of an AU whose landmarks are each other's mirror (AU1's
    21/22, the eyes, …), so the result equals ``au_centres`` of the mirrored landmarks; midline pairs
    (51/57 of AU23, 24, 25) keep their order. Without ``aus`` every pair is exchanged. The rendered map
    is the same either way, since both centres share a channel.
    """
    out = np.asarray(centres, np.float32) - np.array([g.ox, g.oy], np.float32)
    if g.flip:
        swap = np.ones(len(out), bool) if aus is None else np.array(
            [_mirrors_onto_each_other(*AU_CENTRE_RULES[au][0]) for au in aus], bool)
        out[swap] = out[swap][:, ::-1]
        out[..., 0] = _move_x(out[..., 0], g)
    return out


def flip_maps(maps: np.ndarray) -> np.ndarray:
    """Mirror (…, H, W) maps; both sides of an AU share a channel, so mirroring swaps them."""
    return np.ascontiguousarray(maps[..., ::-1])


_GREY = np.array([0.2989, 0.587, 0.114], np.float32)   # torchvision rgb_to_grayscale weights


class PhotometricTransform:
    """uint8 (H, W, 3) → normalised float32 (3, H, W); colour jitter only when training.

    Jitter follows torchvision's ColorJitter (factors uniform in [1 − j, 1 + j], brightness, contrast and
    saturation applied in a random order, hue 0) but runs in NumPy: torch's intra-op threads made the
    per-image version 30× slower in a ``num_workers=0`` loader on a busy 2-core machine (152 vs 5 ms).
    """

    def __init__(self, train: bool, jitter: float = 0.4) -> None:
        self.jitter = jitter if train else 0.0
        self.mean = np.array(IMAGENET_MEAN, np.float32)
        self.std = np.array(IMAGENET_STD, np.float32)

    @staticmethod
    def _jitter_op(x: np.ndarray, k: int, f: np.float32) -> np.ndarray:
        """One jitter operation on (H, W, 3) floats in [0, 1]: 0 brightness, 1 contrast, 2 saturation."""
        if k == 0:    # brightness: scale towards black
            x = x * f
        elif k == 1:  # contrast: blend with the mean grey level
            x = x * f + (1 - f) * float((x @ _GREY).mean())
        else:         # saturation: blend with the grey image
            x = x * f + (1 - f) * (x @ _GREY)[..., None]
        return np.clip(x, 0.0, 1.0)

    def _jitter(self, x: np.ndarray, generator: torch.Generator | None) -> np.ndarray:
        j = self.jitter
        factors = (1 - j + 2 * j * torch.rand(3, generator=generator)).tolist()
        for k in torch.randperm(3, generator=generator).tolist():
            x = self._jitter_op(x, k, np.float32(factors[k]))
        return x

    def __call__(self, image: np.ndarray, generator: torch.Generator | None = None) -> torch.Tensor:
        x = image.astype(np.float32) / 255.0
        if self.jitter > 0:
            x = self._jitter(x, generator)
        x = (x - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
