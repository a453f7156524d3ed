"""FLOP accounting by module, measured with torch's FlopCounterMode (matmul/conv FLOPs, 2 per MAC)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from au_ttt.model.au_ttt import AUTTT

__all__ = ["block_flop_shares", "count_flops"]


def count_flops(model: AUTTT, batch: int = 1) -> dict[str, int]:
    """FLOPs of one forward pass, in total and per branch of the first block."""
    cfg = model.cfg
    x = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size)
    masks = torch.rand(batch, model.num_aus, *cfg.grid_size)
    with torch.no_grad(), FlopCounterMode(display=False, depth=4) as counter:
        model(x, masks)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    out = {"total": counter.get_total_flops()}
    for part in ("", ".mixer", ".msp", ".roi", ".mlp"):
        out[f"block{part}" if part else "block"] = counts.get(f"AUTTT.blocks.0{part}", 0)
    return out


def block_flop_shares(model: AUTTT) -> dict[str, float]:
    """Share of each branch in one AU-TTT block's FLOPs (e.g. MSP ≈ 6 % at ViT-S/16, 224 px)."""
    flops = count_flops(model)
    block = max(flops["block"], 1)
    return {k.removeprefix("block."): v / block for k, v in flops.items() if k.startswith("block.")}
