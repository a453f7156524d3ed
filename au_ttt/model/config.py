"""Model configuration: sizes and the ablation switches of Table III, as one frozen dataclass.

Defaults are the paper's full AU-TTT at ViT-S/16 size (§III-A "Implementation Details": patch 16,
dim 384, depth 12, 6 heads, MSP dilations 1/3/5). Values the paper does not state carry their source
here and in ``config/*.yaml``.

Sizes have upper bounds (:data:`LIMITS`, :data:`MAX_PARAMS`), generous multiples of the largest published
vision transformers — ViT-g/14 and ViT-G/14 (Zhai et al., "Scaling Vision Transformers", CVPR 2022: width
1408/1664, depth 40/48, 16 heads, MLP ratio 4.4/4.9) and ViT-22B (Dehghani et al., ICML 2023: width 6144,
depth 48, 48 heads, MLP ratio 4). They exist so that a typo or an edited bundle record (``depth: 1000000000``)
is one config error instead of an allocation the kernel's OOM killer ends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["LIMITS", "MAX_PARAMS", "ModelConfig"]

# Largest accepted value of each size (inclusive); the smallest is 1.
LIMITS: dict[str, int | float] = {
    "img_size": 4096,          # 18x ViT-S/16's 224 px
    "patch_size": 1024,
    "in_chans": 64,
    "embed_dim": 8192,         # ViT-22B: 6144, ViT-G/14: 1664
    "depth": 192,              # 4x ViT-G/14 and ViT-22B (48)
    "num_heads": 128,          # ViT-22B: 48, ViT-G/14: 16
    "mlp_ratio": 16.0,         # ViT-G/14: 4.9, ViT-22B: 4
    "grid_tokens": 65536,      # (img_size / patch_size)^2: a 256 x 256 patch grid (4096 px at patch 16)
    "heatmap_size": 4096,
    "ttt_mini_batch": 65536,   # at most the largest token grid
    "msp_dilation": 256,       # at most the largest grid side
    "msp_dilations": 16,       # number of MSP branches
    "resnet_width": 8192,      # each `widths` stage of the resnet baseline (ResNet-50: 64-512; timm scales x4 inside)
}
# Estimated parameters (:attr:`ModelConfig.approx_params`): 10 billion, 40 GB of fp32 weights; AU-TTT at
# ViT-G/14 size is about 3 billion (estimated 3.4).
MAX_PARAMS = 10_000_000_000
_INT_SIZES = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads")


@dataclass(frozen=True)
class ModelConfig:
    # --- size (ViT-S/16, paper §III-A) ---
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    # "imagenet": the loader's ImageNet-normalised RGB as is (paper, any ViT-S weights). "grey_standardize":
    # the model turns it into per-image standardised greyscale (replicated to 3 channels, so ViT-S weights
    # still load). Assumed for small from-scratch runs: skin tone, hair and background colour identify the
    # subject, not the AU (OpenFace's appearance features are greyscale too, Baltrušaitis et al., FG 2015).
    input_norm: Literal["imagenet", "grey_standardize"] = "imagenet"
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0                 # ViT-S/16 (Dosovitskiy et al.; timm vit_small_patch16_224)
    drop_path_rate: float = 0.1            # assumed: DeiT-S recipe value; the paper is silent
    # --- token mixer (Table III switches) ---
    # "linear" = Table III baseline (no TTT); "attention" = our control, timm's multi-head self-attention in
    # place of the TTT mixer (not a paper row)
    mixer: Literal["linear", "ttt", "attention"] = "ttt"
    ttt_mini_batch: int | Literal["row"] = "row"  # "row" = tokens per patch row (paper's forward TTT); 16 = original
    bidirectional: bool = True             # Bi-TTT, eq. 6
    bi_share: Literal["none", "proj", "all"] = "proj"  # see au_ttt.model.layers docstring (Vim-style sharing)
    msp: bool = True                       # multi-scale perception branch
    msp_dilations: tuple[int, ...] = (1, 3, 5)  # paper §III-A
    au_roi: bool = True                    # AU RoI TTT branch, eq. 7
    # --- TTT-Linear inner loop (ttt-lm-pytorch TTTConfig defaults) ---
    ttt_base_lr: float = 1.0
    ttt_rope: bool = True
    ttt_rope_theta: float = 10000.0
    # --- heads ---
    heatmap_size: int | None = None        # supervision resolution of the heatmap head; None = token grid
    # --- execution (same function either way) ---
    compile: bool = False                  # torch.compile the whole TTT scan on CPU (README "Benchmark"); CUDA: Triton
    # --- same-protocol baselines (au_ttt/model/baselines.py): "vit" = a plain timm VisionTransformer of this
    # section's sizes (CLS -> AU logits), "resnet" = the timm model `timm_model` (channel widths `widths`, null =
    # timm's); neither has TTT, MSP, AU RoI or heatmaps ---
    arch: Literal["au_ttt", "vit", "resnet"] = "au_ttt"
    timm_model: str = "resnet50"           # timm name of the `resnet` baseline (the backbone most AU papers use)
    widths: tuple[int, ...] | None = None  # `resnet` stage widths (timm ResNet `channels`); null = the named model's

    def __post_init__(self) -> None:
        for key in _INT_SIZES:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{key} must be a whole number, got {value!r}")
            if not 1 <= value <= LIMITS[key]:
                raise ValueError(f"{key} must be in [1, {LIMITS[key]}], got {value}")
        if not 0 < self.mlp_ratio <= LIMITS["mlp_ratio"]:
            raise ValueError(f"mlp_ratio must be in (0, {LIMITS['mlp_ratio']:g}], got {self.mlp_ratio}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if not self.ttt_base_lr > 0:
            raise ValueError(f"ttt_base_lr must be > 0, got {self.ttt_base_lr}")
        if not self.ttt_rope_theta > 0:
            raise ValueError(f"ttt_rope_theta must be > 0, got {self.ttt_rope_theta}")
        if self.heatmap_size is not None and self.heatmap_size < 1:
            raise ValueError(f"heatmap_size must be >= 1 or null, got {self.heatmap_size}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} must be a multiple of patch_size {self.patch_size}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} must be divisible by num_heads {self.num_heads}")
        if isinstance(self.ttt_mini_batch, int) and self.ttt_mini_batch < 1:
            raise ValueError(f"ttt_mini_batch must be >= 1 or 'row', got {self.ttt_mini_batch}")
        if self.input_norm == "grey_standardize" and self.in_chans != 3:
            raise ValueError(f"input_norm 'grey_standardize' needs in_chans 3 (RGB input), got {self.in_chans}")
        if self.mixer != "ttt" and self.bidirectional:
            raise ValueError(f"bidirectional=true needs mixer 'ttt' (mixer {self.mixer!r} has no scan)")
        if self.arch != "au_ttt" and (self.au_roi or self.msp or self.mixer == "ttt"):
            raise ValueError(f"arch {self.arch!r} is a plain timm baseline: set mixer 'linear', msp false and au_roi "
                             "false (it has no token mixer, MSP or AU RoI branch of its own)")
        if self.widths is not None and (len(self.widths) != 4 or any(
                not isinstance(w, int) or not 1 <= w <= LIMITS["resnet_width"] for w in self.widths)):
            raise ValueError(f"widths must be four whole stage widths in [1, {LIMITS['resnet_width']}] or null, "
                             f"got {self.widths}")
        if any(d < 1 for d in self.msp_dilations) or not self.msp_dilations:
            raise ValueError(f"msp_dilations must be positive integers, got {self.msp_dilations}")
        self._check_limits()

    def _check_limits(self) -> None:
        """Upper bounds of the sizes that only make sense together (see :data:`LIMITS`)."""
        tokens = self.grid_size[0] * self.grid_size[1]
        if tokens > LIMITS["grid_tokens"]:
            raise ValueError(f"img_size {self.img_size} / patch_size {self.patch_size} gives {tokens} patch tokens, "
                             f"more than {LIMITS['grid_tokens']}; use a smaller img_size or a larger patch_size")
        if self.heatmap_size is not None and self.heatmap_size > LIMITS["heatmap_size"]:
            raise ValueError(f"heatmap_size must be <= {LIMITS['heatmap_size']}, got {self.heatmap_size}")
        if isinstance(self.ttt_mini_batch, int) and self.ttt_mini_batch > LIMITS["ttt_mini_batch"]:
            raise ValueError(f"ttt_mini_batch must be <= {LIMITS['ttt_mini_batch']}, got {self.ttt_mini_batch}")
        if len(self.msp_dilations) > LIMITS["msp_dilations"] or max(self.msp_dilations) > LIMITS["msp_dilation"]:
            raise ValueError(f"msp_dilations: at most {LIMITS['msp_dilations']} values, each <= "
                             f"{LIMITS['msp_dilation']}; got {self.msp_dilations}")
        if self.approx_params > MAX_PARAMS:
            raise ValueError(f"embed_dim {self.embed_dim}, depth {self.depth}, mlp_ratio {self.mlp_ratio:g} and "
                             f"{tokens} tokens make about {self.approx_params / 1e9:.0f} billion parameters, more "
                             f"than the {MAX_PARAMS / 1e9:.0f} billion allowed; choose smaller sizes")

    @property
    def approx_params(self) -> int:
        """Parameter count estimated without building the model; errs high (the full AU-TTT measures about 0.8x).

        Per block: MLP 2·r·D² plus at most 16·D² for the mixer, MSP and AU RoI branches (Bi-TTT without
        sharing, the largest); plus the positional table and the patch embedding.
        """
        D = self.embed_dim
        tokens = self.grid_size[0] * self.grid_size[1]
        per_block = (2 * self.mlp_ratio + 16) * D * D
        return int(self.depth * per_block + (tokens + 1 + self.patch_size ** 2 * self.in_chans) * D)

    @property
    def grid_size(self) -> tuple[int, int]:
        g = self.img_size // self.patch_size
        return g, g

    @property
    def mini_batch_size(self) -> int:
        """Resolved TTT mini-batch: 'row' means one patch row (14 at 224/16)."""
        return self.grid_size[1] if self.ttt_mini_batch == "row" else int(self.ttt_mini_batch)

    def with_overrides(self, **changes) -> ModelConfig:
        return replace(self, **changes)

