"""FLOP accounting with one counter for every model: torch's FlopCounterMode (matmul/conv/attention, 2 per MAC).

torch's registry has no entry for the CPU flash-attention kernel that ``scaled_dot_product_attention``
(and so timm's ViT) uses on CPU, so a CPU count would silently leave attention out (8.48 instead of 9.2
GFLOPs for ViT-S/16 at 224 px), and its convolution-backward formula ignores ``groups`` (a depthwise 3×3
convolution's backward counts C times too much: 385× its forward for C = 384). :func:`flop_counter` adds the
first with torch's own SDPA formulas and counts a convolution's backward as one forward per requested
gradient (input, weight), so AU-TTT, timm ViT-S and the attention control are counted the same way on every
device. Elementwise work (norms, activations, the TTT inner LayerNorm) is not counted, for any model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, sdpa_backward_flop_count, sdpa_flop_count

__all__ = ["block_flop_shares", "count_flops", "count_fn_flops", "flop_counter"]

_aten = torch.ops.aten


def _cpu_flash_forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_flash_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _conv_backward(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, _out_padding,
                   _groups, output_mask, out_shape=None) -> int:
    """∂input and ∂weight each cost one forward (the weight shape already holds in_channels / groups)."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def flop_counter(depth: int = 2) -> FlopCounterMode:
    """A FlopCounterMode that also counts CPU flash attention and counts grouped convolutions' backward right."""
    mapping = {_aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_forward,
               _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward,
               _aten.convolution_backward: _conv_backward}
    return FlopCounterMode(display=False, depth=depth, custom_mapping=mapping)


def count_fn_flops(fn: Callable[[], object]) -> int:
    """FLOPs of everything ``fn()`` runs (call ``backward`` inside it to count a training step)."""
    with flop_counter() as counter:
        fn()
    return counter.get_total_flops()


def count_flops(model, batch: int = 1) -> dict[str, int]:
    """FLOPs of one forward pass of an AU-TTT model, in total and per branch of the first block."""
    cfg = model.cfg
    x = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size)
    masks = torch.rand(batch, model.num_aus, *cfg.grid_size)
    with torch.no_grad(), flop_counter(depth=4) as counter:
        model(x, masks)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    out = {"total": counter.get_total_flops()}
    for part in ("", ".mixer", ".msp", ".roi", ".mlp"):
        out[f"block{part}" if part else "block"] = counts.get(f"AUTTT.blocks.0{part}", 0)
    return out


def block_flop_shares(model) -> dict[str, float]:
    """Share of each branch in one AU-TTT block's FLOPs (e.g. MSP ≈ 6 % at ViT-S/16, 224 px)."""
    flops = count_flops(model)
    block = max(flops["block"], 1)
    return {k.removeprefix("block."): v / block for k, v in flops.items() if k.startswith("block.")}
