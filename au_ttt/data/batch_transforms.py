"""The photometric part of the training transform, applied to a whole batch on its device.

Measured on the 2-core reference machine (CPU time per 256 px crop, docs/scaling.md): a loader worker spent
about 5 ms on an item, of which the float work — uint8 → float, colour jitter, ImageNet normalisation, and
collating float32 batches four times the size of uint8 ones — was about 3.5 ms. Feeding four GPUs at the
plan's rate then needs more cores than a node has. With ``AUFrameDataset.device_photometric`` on (the
trainer turns it on for CUDA devices), a worker returns the geometrically transformed crop as uint8 plus the
jitter it drew (factors and order, from the same random stream as before), and :func:`model_images` does the
float work on the GPU. On a CPU device the workers keep doing it (numpy is cheaper there than batched torch),
so CPU runs are unchanged.

The jitter is :class:`au_ttt.data.transforms.PhotometricTransform`'s, per sample: brightness, contrast and
saturation factors applied in the sample's order, each followed by clipping to [0, 1]; without jitter the
result equals that transform's test path exactly (same float32 operations in the same order).
"""

from __future__ import annotations

from typing import Any

import torch

from au_ttt.data.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["GREY_WEIGHTS", "jitter_batch", "model_images", "normalise_batch"]

GREY_WEIGHTS = (0.2989, 0.587, 0.114)   # torchvision rgb_to_grayscale, as PhotometricTransform


def _grey(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(GREY_WEIGHTS, dtype=x.dtype, device=x.device)
    return torch.einsum("bchw,c->bhw", x, w)[:, None]


def jitter_batch(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Colour jitter of (B, 3, H, W) floats in [0, 1]: per sample the ops ``order[b]`` (0 brightness,
    1 contrast, 2 saturation) with ``factors[b, op]``, each clipped to [0, 1]."""
    x = x.clone()
    for step in range(order.shape[1]):
        for op in range(3):
            rows = torch.nonzero(order[:, step] == op).flatten()
            if rows.numel() == 0:
                continue
            sub, f = x[rows], factors[rows, op].to(x.dtype).view(-1, 1, 1, 1)
            if op == 0:
                sub = sub * f
            elif op == 1:
                sub = sub * f + (1 - f) * _grey(sub).mean(dim=(1, 2, 3), keepdim=True)
            else:
                sub = sub * f + (1 - f) * _grey(sub)
            x[rows] = sub.clamp(0.0, 1.0)
    return x


def normalise_batch(x: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of (B, 3, H, W) floats in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def model_images(batch: dict[str, Any], device: torch.device | str) -> torch.Tensor:
    """The model input of a collated batch on ``device``: float images as they are, uint8 ones made float,
    jittered (when the batch carries ``jitter``/``jitter_order``) and normalised there."""
    images = batch["image"].to(device, non_blocking=True)
    if images.dtype != torch.uint8:
        return images
    x = images.float() / 255.0
    if "jitter" in batch:
        x = jitter_batch(x, batch["jitter"].to(device, non_blocking=True),
                         batch["jitter_order"].to(device, non_blocking=True))
    return normalise_batch(x)
