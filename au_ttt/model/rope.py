"""Rotary position embedding of the TTT layers: position i mod mini-batch, half-split convention.

Both official TTT flavours rotate Q and K by their position inside the mini-batch (ttt-lm-pytorch
``ttt.py``, ``apply_rotary_pos_emb`` with ``position_ids % mini_batch_size``), so one table of
``mini_batch`` rows serves every sequence length. The table is computed once per
(mini-batch, head dim, θ, device) and cached; the angles are float32 whatever the compute dtype.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["rope", "rope_", "rope_inverse", "rope_tables"]


@functools.lru_cache(maxsize=64)
def _tables(mini_batch: int, head_dim: int, theta: float, device: str) -> tuple[Tensor, Tensor]:
    half = head_dim // 2
    inv_freq = theta ** (-torch.arange(half, device=device, dtype=torch.float32) / half)
    ang = torch.arange(mini_batch, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return ang.cos(), ang.sin()                                       # (mini_batch, F/2) each


def rope_tables(mini_batch: int, head_dim: int, theta: float, device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos and sin of position p·θ^(-2f/F) for p < mini_batch, f < F/2: two (mini_batch, F/2) tensors."""
    cos, sin = _tables(mini_batch, head_dim, float(theta), str(torch.device(device)))
    return cos.to(dtype), sin.to(dtype)


def rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (x1, x2) = the two halves of the last dim by the table's angle; an odd last feature is kept.

    ``cos``/``sin`` broadcast against ``x[..., :F/2]`` (e.g. (b, F/2) for x of shape (..., b, F)).
    """
    half = cos.shape[-1]
    x1, x2 = x[..., :half], x[..., half:2 * half]
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return torch.cat([rotated, x[..., 2 * half:]], dim=-1) if x.shape[-1] % 2 else rotated


def rope_inverse(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The transpose (= inverse) rotation: the vector-Jacobian product of :func:`rope`."""
    return rope(x, cos, -sin)


def rope_(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """:func:`rope` in place (5 elementwise passes over half of ``x``, no concatenation); returns ``x``.

    Pass ``-sin`` for the inverse rotation.
    """
    half = cos.shape[-1]
    x1, x2 = x[..., :half], x[..., half:2 * half]
    x1_sin = x1 * sin
    x1.mul_(cos).addcmul_(x2, sin, value=-1.0)
    x2.mul_(cos).add_(x1_sin)
    return x
