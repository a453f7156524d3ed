"""AU-TTT: the ViT-style backbone with AU-TTT blocks and the AU/heatmap heads (paper §II-B, Fig. 3).

* Input: the loader's ImageNet-normalised RGB enters unchanged (``input_norm: imagenet``) or is turned
  into per-image standardised greyscale by :class:`GreyStandardize` inside the model, so pretraining,
  training and every evaluation see the same input whatever loader feeds them.
* Tokens (eq. 5): timm ``PatchEmbed`` → J patch tokens in raster order, the CLS token appended LAST,
  plus a learnable positional embedding of J+1 rows.
* Block (Fig. 3 top right): x + DropPath(Σ branches(LN(x))), then x + DropPath(MLP(LN(x))), where the
  branches are the token mixer (linear baseline, forward TTT, or Bi-TTT), MSP and AU RoI TTT, each
  switchable from ``ModelConfig`` so the six Table III rows are one class with different arguments.
  ``mixer: attention`` puts timm's multi-head self-attention (``timm.layers.Attention``, ViT-S's own) in the
  mixer's place: our control for the TTT-vs-attention comparison, not a paper row.
* Heads (§II-C: "we transform the CLS token and the heatmap obtained from the last block"): a heatmap
  head maps each final patch token to N_AU values, giving N_AU maps on the token grid (resized to
  ``heatmap_size`` when set) that the MSE loss supervises. AU logits fuse both sources:
  ``logit_a = Linear(CLS)_a + g_a · mean_p(heatmap_a)``. The spatial mean is FG-Net's decision statistic
  (``heatmap2au``: AU present iff mean > 0), so it enters as signed evidence with a learnable per-AU gain
  g_a (init 1).
* Weights: :func:`load_pretrained` loads this package's own files (``au-ttt pretrain`` output) strictly —
  only the task-specific parts (heads, heatmap gain, AU RoI branch) may be new; timm ViT-S/16 weights go
  through :func:`au_ttt.model.transfer.load_timm_vit_s16`, which maps attention onto the TTT projections.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import Attention, DropPath, Mlp, PatchEmbed, resample_abs_pos_embed, trunc_normal_
from torch import Tensor, nn

from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write
from au_ttt.model.config import ModelConfig
from au_ttt.model.layers import AURoITTT, BiTTT, LinearMixer, MultiScalePerception, TTTLinear

__all__ = ["AUTTT", "AUOutput", "AUTTTBlock", "GreyStandardize", "LoadReport", "checkpoint_filter_fn",
           "load_pretrained", "resample_pos_embed", "save_weights", "state_shapes"]

_log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "au_ttt"  # safetensors metadata 'format' of checkpoints written by this package


class AUOutput(NamedTuple):
    logits: Tensor    # (B, N_AU) occurrence logits
    heatmaps: Tensor  # (B, N_AU, S, S) predicted AU heatmaps


class GreyStandardize(nn.Module):
    """ImageNet-normalised RGB → greyscale with zero mean and unit variance per image, as 3 equal channels.

    Undoes the loader's normalisation, takes ITU-R 601 luma, then standardises each image, so the output
    does not change when an image's brightness or contrast does (a·v + b, a > 0) nor with its colour cast
    beyond luma. Three channels keep the patch embedding ViT-S shaped.
    """

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        grey = ((x * self.std + self.mean) * self.luma).sum(1, keepdim=True)
        var, mean = torch.var_mean(grey, dim=(1, 2, 3), keepdim=True, correction=0)
        return ((grey - mean) / torch.sqrt(var + self.eps)).expand(-1, x.shape[1], -1, -1)


class AUTTTBlock(nn.Module):
    """norm → (token mixer + MSP + AU RoI TTT) → residual → norm → MLP → residual."""

    def __init__(self, cfg: ModelConfig, num_aus: int, drop_path: float = 0.0):
        super().__init__()
        D = cfg.embed_dim
        ttt_kw = dict(base_lr=cfg.ttt_base_lr, rope=cfg.ttt_rope, rope_theta=cfg.ttt_rope_theta,
                      compile_steps=cfg.compile)
        self.norm1 = nn.LayerNorm(D, eps=1e-6)
        if cfg.mixer == "linear":
            self.mixer: nn.Module = LinearMixer(D)
        elif cfg.mixer == "attention":
            self.mixer = Attention(D, cfg.num_heads, qkv_bias=True)     # ViT-S/16's attention (timm)
        elif cfg.bidirectional:
            self.mixer = BiTTT(D, cfg.num_heads, cfg.mini_batch_size, share=cfg.bi_share, **ttt_kw)
        else:
            self.mixer = TTTLinear(D, cfg.num_heads, cfg.mini_batch_size, **ttt_kw)
        self.msp = MultiScalePerception(D, cfg.grid_size, cfg.msp_dilations) if cfg.msp else None
        self.roi = AURoITTT(D, cfg.num_heads, num_aus, **ttt_kw) if cfg.au_roi else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(D, eps=1e-6)
        self.mlp = Mlp(D, int(D * cfg.mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: Tensor, roi_masks: Tensor | None = None) -> Tensor:
        h = self.norm1(x)
        y = self.mixer(h)
        if self.msp is not None:
            y = y + self.msp(h)
        if self.roi is not None:
            if roi_masks is None:
                raise ValueError("this model has the AU RoI TTT branch: pass roi_masks (B, N_AU, H', W')")
            y = y + self.roi(h, roi_masks)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class AUTTT(nn.Module):
    """AU detector: patch embedding → AU-TTT blocks → norm → AU logits + AU heatmaps."""

    def __init__(self, cfg: ModelConfig, num_aus: int):
        super().__init__()
        self.cfg, self.num_aus = cfg, num_aus
        D = cfg.embed_dim
        self.grid_size = cfg.grid_size
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.heatmap_size = cfg.heatmap_size or self.grid_size[0]
        self.input_norm = GreyStandardize() if cfg.input_norm == "grey_standardize" else nn.Identity()
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, D))  # row J = CLS
        dpr = torch.linspace(0, cfg.drop_path_rate, cfg.depth, device="cpu").tolist()  # also under a meta default
        self.blocks = nn.ModuleList(AUTTTBlock(cfg, num_aus, dpr[i]) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self.head = nn.Linear(D, num_aus)
        self.heatmap_head = nn.Linear(D, num_aus)
        self.heatmap_gain = nn.Parameter(torch.ones(num_aus))
        self.init_weights()

    def init_weights(self) -> None:
        """timm ViT init (trunc-normal 0.02 linears, zero biases); TTT layers keep their own init."""
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, TTTLinear):
                m.reset_parameters()

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def forward_features(self, x: Tensor, roi_masks: Tensor | None = None) -> Tensor:
        """Images (B, C, H, W) → normalised tokens (B, J+1, D), CLS last."""
        x = self.patch_embed(self.input_norm(x))
        x = torch.cat([x, self.cls_token.expand(x.shape[0], -1, -1)], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x, roi_masks)
        return self.norm(x)

    def forward_head(self, tokens: Tensor) -> AUOutput:
        B = tokens.shape[0]
        gh, gw = self.grid_size
        maps = self.heatmap_head(tokens[:, :-1]).transpose(1, 2).reshape(B, self.num_aus, gh, gw)
        if self.heatmap_size != gh:
            maps = F.interpolate(maps, size=(self.heatmap_size, self.heatmap_size), mode="bilinear",
                                 align_corners=False)
        logits = self.head(tokens[:, -1]) + self.heatmap_gain * maps.mean(dim=(-2, -1))
        return AUOutput(logits, maps)

    def forward(self, x: Tensor, roi_masks: Tensor | None = None) -> AUOutput:
        return self.forward_head(self.forward_features(x, roi_masks))

    def forward_cls(self, x: Tensor) -> Tensor:
        """CLS-token classification (ImageNet pretraining); needs a model built without the RoI branch."""
        return self.head(self.forward_features(x)[:, -1])

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.cfg.embed_dim, num_classes)
        trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)


def state_shapes(cfg: ModelConfig, num_aus: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict of ``AUTTT(cfg, num_aus)``, built on the meta device (no memory).

    So a config can be checked against a weights file's header before anything is allocated.
    """
    with torch.device("meta"):
        model = AUTTT(cfg, num_aus)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def resample_pos_embed(pos: Tensor, model: AUTTT, *, cls_first: bool) -> Tensor:
    """A (1, 1 + J0, D) position table → this model's (1, J + 1, D), CLS row last, patch grid resampled
    (timm ``resample_abs_pos_embed``, bicubic) when J0 ≠ J."""
    cls_pos, patch_pos = (pos[:, :1], pos[:, 1:]) if cls_first else (pos[:, -1:], pos[:, :-1])
    if patch_pos.shape[1] != model.num_patches:
        old = round(patch_pos.shape[1] ** 0.5)
        patch_pos = resample_abs_pos_embed(patch_pos, list(model.grid_size), [old, old], num_prefix_tokens=0)
    return torch.cat([patch_pos, cls_pos], dim=1)


def _fuse_legacy_qkv(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Files written before Q/K/V were fused (``…q_proj/k_proj/v_proj.weight``) → ``…qkv.weight``."""
    out = dict(state)
    for key in [k for k in state if k.endswith(".q_proj.weight")]:
        prefix = key.removesuffix("q_proj.weight")
        parts = [f"{prefix}{p}_proj.weight" for p in "qkv"]
        if all(p in state for p in parts):
            out[f"{prefix}qkv.weight"] = torch.cat([state[p] for p in parts])
            for p in parts:
                del out[p]
    return out


def checkpoint_filter_fn(state_dict: dict[str, Tensor], model: AUTTT) -> dict[str, Tensor]:
    """Adapt one of this package's state dicts to ``model``: legacy Q/K/V names, resampled positions, heads.

    Heads whose shape differs (another class count) are dropped here and so reported as missing; a row
    mini-batch's τ is cut or zero-extended to the new row length.
    """
    out = _fuse_legacy_qkv(state_dict)
    if "pos_embed" in out:
        out["pos_embed"] = resample_pos_embed(out["pos_embed"], model, cls_first=False)
    own = model.state_dict()
    for key in [k for k in out if _task_specific(k)]:
        if key in own and own[key].shape != out[key].shape:
            del out[key]
    for key in [k for k in out if k.endswith("token_offset")]:
        if key in own and own[key].shape != out[key].shape:
            # A row mini-batch changes with the grid: keep the learnt τ of the shared positions, τ = 0
            # (the 1/(i+1) default) for new ones.
            tau = torch.zeros_like(own[key])
            n = min(len(tau), len(out[key]))
            tau[:n] = out[key][:n]
            out[key] = tau
    return out


_TASK_SPECIFIC = re.compile(r"^(head\.|heatmap_head\.|heatmap_gain$|blocks\.\d+\.roi\.)")


def _task_specific(key: str) -> bool:
    """Keys a backbone file may lack: the AU heads, the heatmap gain and the AU RoI TTT branch."""
    return bool(_TASK_SPECIFIC.match(key))


def _listing(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f" … ({len(keys)} in all)" if len(keys) > limit else "")


@dataclass(frozen=True)
class LoadReport:
    missing: list[str]      # task-specific keys left at their initialisation (heads, heatmap gain, RoI branch)
    unexpected: list[str]   # always empty: unexpected keys are an error

    def summary(self) -> str:
        return f"{len(self.missing)} task-specific keys initialised fresh, {len(self.unexpected)} unexpected"


def load_pretrained(model: AUTTT, path: str | Path) -> LoadReport:
    """Load one of this package's safetensors files (``au-ttt pretrain`` output, or a trained model) strictly.

    Only task-specific keys may be missing (``head.*``, ``heatmap_head.*``, ``heatmap_gain``, the AU RoI
    branch ``blocks.N.roi.*``) and a classifier head of another class count is dropped; any other missing
    key, any unexpected key or any other shape difference is an :class:`InputError` naming the keys.
    timm ViT weights go through :func:`au_ttt.model.transfer.load_timm_vit_s16` instead.
    """
    from au_ttt.model.weights import read_state_dict

    path = Path(path)
    fix = ("give the backbone.safetensors written by `au-ttt pretrain` (or a model.safetensors from `au-ttt train`) "
           "for the same `model` section")
    state, _ = read_state_dict(path, fix)
    if any(k.endswith(".attn.qkv.weight") and k.startswith("blocks.") for k in state) and "cls_token" in state \
            and not any(".mixer." in k for k in state):
        raise InputError(f"{path}: this is a timm ViT state dict, not an AU-TTT one; initialise from it with "
                         "`pretrain.source: timm_checkpoint` (au_ttt.model.transfer.load_timm_vit_s16)")
    state = checkpoint_filter_fn(state, model)
    own = model.state_dict()
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in state
              if k in own and state[k].shape != own[k].shape]
    missing = sorted(k for k in own if k not in state)
    backbone_missing = [k for k in missing if not _task_specific(k)]
    unexpected = sorted(k for k in state if k not in own)
    if shapes or backbone_missing or unexpected:
        problems = [f"{what}: {_listing(keys)}" for what, keys in (
            ("shape differs", shapes), ("missing backbone keys", backbone_missing), ("unexpected keys", unexpected))
            if keys]
        raise InputError(f"{path}: does not fit this model (embed_dim {model.cfg.embed_dim}, depth {model.cfg.depth}, "
                         f"mixer {model.cfg.mixer}); " + "; ".join(problems) + f"; {fix}")
    model.load_state_dict(state, strict=False)
    report = LoadReport(missing, [])
    _log.info("loaded %s: %s", path, report.summary())
    if missing:
        _log.info("  initialised fresh: %s", _listing(missing, 12))
    return report


def save_weights(model: nn.Module, path: str | Path, extra_metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s state dict as safetensors (atomically), tagged so :func:`load_pretrained` knows it."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"format": CHECKPOINT_FORMAT, **(extra_metadata or {})}
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))
