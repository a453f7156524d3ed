"""Training and pretraining configuration (sections ``train`` and ``pretrain``); torch-free.

The paper states none of these values: each one cites the code base it follows or says
"assumed". Every number is range-checked here so that a bad value is a one-line error naming the key
before any compute starts (NaN/Inf are refused earlier, by :mod:`au_ttt.config`, for every float).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_EPOCHS", "PretrainConfig", "TrainConfig", "check_ranges"]

MAX_EPOCHS = 100_000     # far above any recipe (DeiT: 300); a typo like 1e29 must not pass
_MAX_WORKERS = 1024
_MAX_SEED = 2**32 - 1    # NumPy's legacy seeding takes 32 bits

# (name, lowest, highest), both inclusive; None = unbounded
_Range = tuple[str, float | None, float | None]


def check_ranges(cfg: object, ranges: list[_Range], positive: tuple[str, ...] = ()) -> None:
    """Raise one ValueError listing every field outside its range (``positive`` fields must be > 0)."""
    problems = [f"{name} must be > 0, got {getattr(cfg, name):g}" for name in positive if getattr(cfg, name) <= 0]
    for name, low, high in ranges:
        value = getattr(cfg, name)
        if (low is not None and value < low) or (high is not None and value > high):
            span = f">= {low:g}" if high is None else f"in {low:g}..{high:g}"
            problems.append(f"{name} must be {span}, got {value:g}")
    if problems:
        raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20                  # ME-GraphAU stage 1 (conf.py); AUFormer/AU-TTT values unpublished
    batch_size: int = 64              # ME-GraphAU
    lr: float = 1e-4                  # ME-GraphAU README
    weight_decay: float = 5e-4        # ME-GraphAU, MDHR, FG-Net
    warmup_epochs: float = 1.0        # assumed (the issue asks for a cosine schedule with warm-up)
    warmup_lr: float = 1e-6           # assumed: timm's usual warm-up start
    min_lr: float = 1e-6              # assumed: cosine floor
    random_crop: bool = True          # ME-GraphAU / FG-Net: random input-size crop of the aligned crop (256 → 224)
    grad_clip: float = 1.0            # assumed (FG-Net clips at 0.1 with a 5e-5 lr); 0 = no clipping
    amp: Literal["auto", "bf16", "none"] = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU
    seed: int = 0
    num_workers: int = 4
    threads: int = 0                  # torch CPU threads per job; 0 = torch default (set it under Snakemake!)
    eval_every: int = 1               # evaluate the test part every N epochs (curves; last epoch is reported)
    pretrained: str | None = None     # initial weights: an `au-ttt pretrain` backbone or a timm ViT-S/16 file

    def __post_init__(self) -> None:
        check_ranges(self, [("epochs", 1, MAX_EPOCHS), ("batch_size", 1, None), ("weight_decay", 0, None),
                            ("warmup_epochs", 0, self.epochs), ("warmup_lr", 0, None),
                            ("min_lr", 0, self.lr if self.lr > 0 else None),
                            ("grad_clip", 0, None), ("seed", 0, _MAX_SEED), ("num_workers", 0, _MAX_WORKERS),
                            ("threads", 0, None), ("eval_every", 1, None)], positive=("lr",))


@dataclass(frozen=True)
class PretrainConfig:
    """Classification pretraining of the backbone, and where the initial backbone comes from.

    ``source`` (issue: affordable pretraining): ``imagenet`` pretrains on the ImageFolder ``data_root``
    (the paper's ImageNet-1K; the demo's digits); ``timm_checkpoint`` starts from a local timm ViT-S/16
    state dict at ``checkpoint`` (``.safetensors`` or a ``.pth`` read with ``weights_only=True``; nothing is
    downloaded); ``none`` trains every Table I model from scratch. ``checkpoint`` is read only with
    ``timm_checkpoint``.
    """

    source: Literal["imagenet", "timm_checkpoint", "none"] = "imagenet"
    checkpoint: str | None = None      # timm vit_small_patch16_224 weights (source: timm_checkpoint)
    data_root: str = "data/imagenet"   # ImageFolder root with train/ and val/
    epochs: int = 300                  # DeiT-S / timm ViT-S recipe
    batch_size: int = 1024             # global batch of the DeiT recipe (split over processes)
    lr: float = 5e-4                   # DeiT: 5e-4 · batch/512 is scaled below
    weight_decay: float = 0.05         # DeiT
    warmup_epochs: float = 5.0         # DeiT
    warmup_lr: float = 1e-6            # DeiT
    min_lr: float = 1e-5               # DeiT
    grad_clip: float = 1.0             # assumed (DeiT does not clip; a guard for the small demo runs)
    mixup: float = 0.8                 # DeiT
    cutmix: float = 1.0                # DeiT
    label_smoothing: float = 0.1       # DeiT
    auto_augment: str | None = "rand-m9-mstd0.5-inc1"  # DeiT RandAugment
    num_workers: int = 8
    seed: int = 0
    max_steps: int = 0                 # stop after this many optimiser steps (0 = full epochs; smoke tests)

    def __post_init__(self) -> None:
        if self.source == "timm_checkpoint" and not self.checkpoint:
            raise ValueError("source is 'timm_checkpoint' but checkpoint is not set; give the path of a local timm "
                             "vit_small_patch16_224 file (.safetensors or .pth), or choose source imagenet or none")
        check_ranges(self, [("epochs", 1, MAX_EPOCHS), ("batch_size", 1, None), ("weight_decay", 0, None),
                            ("warmup_epochs", 0, self.epochs), ("warmup_lr", 0, None), ("min_lr", 0, None),
                            ("grad_clip", 0, None), ("mixup", 0, None), ("cutmix", 0, None),
                            ("label_smoothing", 0, 0.999), ("num_workers", 0, _MAX_WORKERS), ("seed", 0, _MAX_SEED),
                            ("max_steps", 0, None)], positive=("lr",))
