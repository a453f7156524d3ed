"""ImageNet-style classification pretraining of the AU-TTT backbone (paper §III-A: ImageNet-1K, ViT-S/16 recipe).

The recipe is timm's/DeiT's for ViT-S/16: RandAugment + random-resized-crop transforms, mixup 0.8 /
cutmix 1.0 with label smoothing 0.1, AdamW (wd 0.05), cosine schedule with warm-up. It runs on one
device or under ``torchrun`` (DDP: NCCL on GPUs, gloo on CPU). The RoI branch is left out (ImageNet has
no landmarks); the saved safetensors backbone loads into the AU model with the RoI and AU-head keys
reported as missing.

Embedded default data: :func:`write_digits_imagefolder` writes scikit-learn's bundled handwritten-digits
set (1,797 real 8×8 scans, 10 classes, offline) as an ImageFolder. It exercises the exact ImageFolder /
DDP / checkpoint path; it is not, and is never reported as, ImageNet.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from au_ttt.errors import InputError
from au_ttt.model.config import ModelConfig
from au_ttt.train.config import PretrainConfig
from au_ttt.train.recipe import build_optimisation, update
from au_ttt.train.records import PretrainResult
from au_ttt.train.runtime import autocast_for, distributed, failpoint, seed_process, worker_init

__all__ = ["BACKBONE", "PretrainConfig", "pretrain", "write_digits_imagefolder"]

log = logging.getLogger(__name__)

BACKBONE = "backbone.safetensors"


def write_digits_imagefolder(out: str | Path, size: int = 64, val_fraction: float = 0.2, seed: int = 0) -> dict:
    """scikit-learn's digits as an RGB ImageFolder (train/val, class folders 0–9). Atomic: temp dir + rename."""
    import shutil

    from PIL import Image
    from sklearn.datasets import load_digits

    out = Path(out)
    if out.exists():
        raise InputError(f"{out}: already exists; remove it or choose another --out")
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.images))
    n_val = int(len(order) * val_fraction)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    hues = rng.random((len(order), 3)) * 0.6 + 0.4   # colour the grey scans so RGB statistics are not trivial
    for rank, i in enumerate(order):
        split = "val" if rank < n_val else "train"
        folder = tmp / split / str(int(digits.target[i]))
        folder.mkdir(parents=True, exist_ok=True)
        grey = (digits.images[i] / 16.0)[..., None] * hues[rank]
        img = Image.fromarray((grey * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
        img.save(folder / f"{i:04d}.png")
    os.replace(tmp, out)
    return {"root": str(out), "train": len(order) - n_val, "val": n_val, "classes": 10}


def _loaders(cfg: PretrainConfig, img_size: int, world: int, rank: int, batch: int):
    from timm.data import create_transform
    from torch.utils.data import DataLoader, DistributedSampler
    from torchvision.datasets import ImageFolder

    root = Path(cfg.data_root)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise InputError(f"{root / split}: missing; pretraining needs an ImageFolder root with train/ and val/ "
                             "(e.g. `au-ttt pretrain --make-digits DIR` for the embedded default)")
    train_tf = create_transform(img_size, is_training=True, auto_augment=cfg.auto_augment, interpolation="bicubic",
                                re_prob=0.25)
    val_tf = create_transform(img_size, is_training=False, interpolation="bicubic", crop_pct=0.875)
    train_set, val_set = ImageFolder(root / "train", train_tf), ImageFolder(root / "val", val_tf)
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=cfg.seed) if world > 1 else None
    g = torch.Generator().manual_seed(cfg.seed)
    init = worker_init if cfg.num_workers else None
    train = DataLoader(train_set, batch, shuffle=sampler is None, sampler=sampler, generator=g, drop_last=True,
                       num_workers=cfg.num_workers, worker_init_fn=init)
    val = DataLoader(val_set, batch, shuffle=False, num_workers=cfg.num_workers, worker_init_fn=init)
    return train, val, sampler, len(train_set.classes)


@torch.no_grad()
def _top1(model: nn.Module, loader, device) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        pred = model(x.to(device)).argmax(-1).cpu()
        correct += int((pred == y).sum())
        total += len(y)
    return correct / max(total, 1)


class _Classifier(nn.Module):
    """CLS-token classifier view of the backbone (what DDP wraps)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone.forward_cls(x)


def pretrain(model_cfg: ModelConfig, cfg: PretrainConfig, out: str | Path, device: torch.device) -> PretrainResult:
    """Pretrain the backbone; rank 0 writes ``backbone.safetensors`` and ``pretrain.json`` into ``out``.

    One process, or one of ``WORLD_SIZE`` under torchrun (:func:`au_ttt.train.runtime.torchrun_command`).
    A non-finite loss stops every rank (they agree on it each step) and writes nothing.
    """
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    from au_ttt.model.au_ttt import AUTTT, save_weights

    out = Path(out)
    for name in (BACKBONE, PretrainResult.FILE):  # no older backbone may survive a failed run
        (out / name).unlink(missing_ok=True)
    with distributed(device) as dist_info:
        rank, world = dist_info.rank, dist_info.world
        seed_process(cfg.seed, rank)
        per_proc = max(1, cfg.batch_size // world)
        train, val, sampler, n_classes = _loaders(cfg, model_cfg.img_size, world, rank, per_proc)
        backbone = AUTTT(replace(model_cfg, au_roi=False), n_classes)
        for p in (*backbone.heatmap_head.parameters(), backbone.heatmap_gain):  # unused by classification
            p.requires_grad_(False)
        model: nn.Module = _Classifier(backbone).to(device)
        if world > 1:
            model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
        steps_per_epoch = max(1, len(train))
        total = cfg.max_steps or cfg.epochs * steps_per_epoch
        opt = build_optimisation(backbone, lr=cfg.lr * cfg.batch_size / 512, weight_decay=cfg.weight_decay,
                                 total_steps=total, warmup_steps=min(round(cfg.warmup_epochs * steps_per_epoch),
                                                                     total // 2),
                                 warmup_lr=cfg.warmup_lr, min_lr=cfg.min_lr, grad_clip=cfg.grad_clip)
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                      num_classes=n_classes) if cfg.mixup > 0 or cfg.cutmix > 0 else None
        criterion = SoftTargetCrossEntropy() if mixup else nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        losses = _run_steps(model, train, sampler, opt, criterion, mixup, cfg, device, total,
                            math.ceil(total / steps_per_epoch), rank, world)
        sums = _rank_checksums(backbone, world)
        result = PretrainResult(steps=opt.step, world_size=world, classes=n_classes, val_top1=_top1(model, val, device),
                                data_root=cfg.data_root, final_loss=losses[-1] if losses else None,
                                rank_weight_checksums=tuple(sums))
        if dist_info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_weights(backbone, out / BACKBONE, {"pretrain": json.dumps(result.to_json())})
            result.write(out)
            log.info("pretrained %d steps on %s: val top-1 %.3f", opt.step, cfg.data_root, result.val_top1)
    return result


def _run_steps(model: nn.Module, train, sampler, opt, criterion, mixup, cfg: PretrainConfig, device: torch.device,
               total: int, epochs: int, rank: int, world: int) -> list[float]:
    """The optimisation steps (``total``, over at most ``epochs``); returns each step's loss."""
    from tqdm import tqdm

    losses: list[float] = []
    for epoch in range(epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        for x, y in tqdm(train, desc=f"pretrain epoch {epoch + 1}/{epochs}", disable=rank != 0, leave=False):
            failpoint(f"pretrain.step{opt.step + 1}")
            x, y = x.to(device), y.to(device)
            if mixup is not None:
                x, y = mixup(x, y)
            with autocast_for(device, "auto"):
                loss = criterion(model(x).float(), y)
            update(opt, model, loss, where=f"pretraining epoch {epoch + 1}, step {opt.step + 1}",
                   hint=f"pretrain.lr (now {cfg.lr:g})", all_ranks=world > 1)
            losses.append(float(loss.detach()))
            if opt.step >= total:
                return losses
    return losses


def _rank_checksums(backbone: nn.Module, world: int) -> list[float]:
    """Each rank's weight sum: equal values prove the ranks stayed in step (DDP test)."""
    checksum = float(sum(p.detach().double().sum() for p in backbone.parameters()))
    if world == 1:
        return [checksum]
    import torch.distributed as dist

    gathered: list[float | None] = [None] * world
    dist.all_gather_object(gathered, checksum)
    return [float(s) for s in gathered if s is not None]
