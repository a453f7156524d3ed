"""Initialise AU-TTT ViT-S/16 from a local timm ``vit_small_patch16_224`` state dict (nothing is downloaded).

Why: ImageNet pretraining of AU-TTT costs what a ViT-S pretraining costs; starting from public ViT-S/16
weights moves everything the two networks share and leaves only the TTT-specific parts to learn.

Mapping (timm key → AU-TTT key; timm ``vision_transformer.py`` layout, CLS token first):

* ``patch_embed.proj.{weight,bias}``, ``cls_token``, ``norm.*`` and per block ``norm1.*``, ``norm2.*``,
  ``mlp.fc1.*``, ``mlp.fc2.*`` → the same names, unchanged.
* ``pos_embed`` (1, 1 + 196, 384) → the CLS row moved last (eq. 5 order) and the 14×14 patch grid resampled
  to this model's grid (timm ``resample_abs_pos_embed``, bicubic) when ``img_size`` ≠ 224.
* ``blocks.i.attn.qkv.weight`` ([Q | K | V], heads contiguous) → the TTT layer's fused ``qkv.weight``, same
  layout; ``blocks.i.attn.proj.weight`` → its ``o_proj.weight``. The TTT projections have no bias, so
  ``attn.qkv.bias`` and ``attn.proj.bias`` are not used. Bi-TTT ``bi_share: proj`` / ``all``: the one shared
  set of projections gets them; ``none``: both directions' layers get a copy. With ``mixer: attention``
  (our control) everything of ``attn`` is copied, biases included; ``mixer: linear`` starts fresh.
* Fresh (their own initialisation): the TTT inner model (W0, b0, inner LN), η gate, token scale τ, TTT
  post-norm, Bi-TTT's output ``proj``, MSP, the AU RoI TTT branch (it mixes N_AU pooled tokens, not image
  patches, and ``au-ttt pretrain`` leaves it fresh too), the heads and the heatmap gain.

A file that is not ViT-S/16 (a ResNet, a ViT-B, …) is refused with an InputError naming missing keys or
differing shapes; nothing is loaded then.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from au_ttt.errors import InputError
from au_ttt.model.au_ttt import AUTTT, resample_pos_embed
from au_ttt.model.weights import read_state_dict

__all__ = ["TransferReport", "load_timm_vit_s16", "timm_vit_s16_sources"]

_log = logging.getLogger(__name__)
VIT_S16 = {"embed_dim": 384, "patch_size": 16, "depth": 12, "num_heads": 6, "mlp_ratio": 4.0, "in_chans": 3}
_SHARED_BLOCK_KEYS = ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                      "mlp.fc2.weight", "mlp.fc2.bias")


@dataclass(frozen=True)
class TransferReport:
    """What :func:`load_timm_vit_s16` did: every AU-TTT tensor is either transferred or fresh."""

    transferred: dict[str, str]   # AU-TTT key → the timm key it came from
    fresh: list[str]              # AU-TTT keys left at their own initialisation
    unused: list[str]             # timm keys with no place in AU-TTT (attention biases of a TTT mixer, head)

    def summary(self) -> str:
        return (f"{len(self.transferred)} tensors from timm ViT-S/16, {len(self.fresh)} fresh, "
                f"{len(self.unused)} timm tensors unused")


def timm_vit_s16_sources(model: AUTTT) -> dict[str, str]:
    """AU-TTT key → timm ViT-S/16 key for every tensor that :func:`load_timm_vit_s16` transfers."""
    cfg = model.cfg
    out = {"patch_embed.proj.weight": "patch_embed.proj.weight", "patch_embed.proj.bias": "patch_embed.proj.bias",
           "cls_token": "cls_token", "pos_embed": "pos_embed", "norm.weight": "norm.weight", "norm.bias": "norm.bias"}
    for i in range(cfg.depth):
        src, dst = f"blocks.{i}.", f"blocks.{i}."
        out.update({dst + k: src + k for k in _SHARED_BLOCK_KEYS})
        if cfg.mixer == "attention":
            out.update({f"{dst}mixer.{k}": f"{src}attn.{k}" for k in ("qkv.weight", "qkv.bias", "proj.weight",
                                                                      "proj.bias")})
        elif cfg.mixer == "ttt":
            layers = ["mixer."] if not cfg.bidirectional else (
                ["mixer.ttt.", "mixer.ttt_bwd."] if cfg.bi_share == "none" else ["mixer.ttt."])
            for layer in layers:
                out[f"{dst}{layer}qkv.weight"] = f"{src}attn.qkv.weight"
                out[f"{dst}{layer}o_proj.weight"] = f"{src}attn.proj.weight"
    return out


def _check_model(model: AUTTT) -> None:
    cfg = model.cfg
    wrong = {k: getattr(cfg, k) for k, v in VIT_S16.items() if getattr(cfg, k) != v}
    if wrong:
        raise InputError(f"timm ViT-S/16 weights initialise an AU-TTT ViT-S/16 ({VIT_S16}); this model's "
                         f"config differs in {wrong}")


def load_timm_vit_s16(model: AUTTT, path: str | Path) -> TransferReport:
    """Initialise ``model`` (an AU-TTT ViT-S/16, any ``img_size``) from a timm ``vit_small_patch16_224`` file.

    Args:
        model: the AU-TTT model; its tensors not listed in the report's ``transferred`` keep their values.
        path: a local ``.safetensors`` file, or ``.pth``/``.pt``/``.bin`` read with
            ``torch.load(weights_only=True)`` (``model``/``state_dict`` nesting is unwrapped).
    Returns:
        A :class:`TransferReport`; nothing is written to the model if the file is refused.
    """
    _check_model(model)
    path = Path(path)
    fix = ("give a state dict of timm `vit_small_patch16_224` (e.g. saved with "
           "`safetensors.torch.save_file(timm.create_model('vit_small_patch16_224', pretrained=True).state_dict(), "
           "path)`)")
    state, _ = read_state_dict(path, fix, allow_torch=True)
    sources = timm_vit_s16_sources(model)
    missing = sorted({s for s in sources.values() if s not in state})
    if missing:
        raise InputError(f"{path}: not a timm ViT-S/16 state dict: missing {', '.join(missing[:8])}"
                         f"{f' … ({len(missing)} in all)' if len(missing) > 8 else ''}; {fix}")
    own = model.state_dict()
    values: dict[str, Tensor] = {}
    for dst, src in sources.items():
        value = state[src]
        if dst == "pos_embed":
            if value.dim() != 3 or value.shape[-1] != own[dst].shape[-1] or round((value.shape[1] - 1) ** 0.5) ** 2 \
                    != value.shape[1] - 1:
                raise InputError(f"{path}: pos_embed has shape {tuple(value.shape)}, not (1, 1 + grid², "
                                 f"{own[dst].shape[-1]}) of a ViT-S/16 with a CLS token; {fix}")
            value = resample_pos_embed(value.float(), model, cls_first=True)
        values[dst] = value
    shapes = [f"{sources[k]} {tuple(v.shape)} vs {k} {tuple(own[k].shape)}" for k, v in values.items()
              if v.shape != own[k].shape]
    if shapes:
        raise InputError(f"{path}: not a timm ViT-S/16 state dict (shapes differ: {'; '.join(shapes[:6])}"
                         f"{f' … ({len(shapes)} in all)' if len(shapes) > 6 else ''}); {fix}")
    with torch.no_grad():
        for key, value in values.items():
            own[key].copy_(value)
    used = set(sources.values())
    report = TransferReport(dict(sorted(sources.items())), sorted(k for k in own if k not in sources),
                            sorted(k for k in state if k not in used))
    _log.info("initialised from %s: %s", path, report.summary())
    return report
