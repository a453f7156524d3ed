"""A short real training of the config's AU-TTT on one device: the readiness check that goes with ``au-ttt bench``.

Why: the benchmark times single steps; before 24 fold trainings are started on a new GPU one also wants to
know that a whole optimisation loop runs there — AdamW, the paper's losses (eq. 11), gradient clipping,
bf16 autocast with the TTT state in fp32 — without NaNs, within memory, and that it learns. The check fits
one fixed synthetic batch (images, RoI masks, labels with a few unknown, heatmap targets) for ``steps``
steps: the loss must fall, every loss finite; it records img/s and peak memory. No dataset is needed.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from au_ttt.model.config import ModelConfig

__all__ = ["train_check"]


def _fixed_batch(cfg: ModelConfig, heatmap_size: int, batch: int, num_aus: int, seed: int, dev: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One seeded batch: images, RoI masks, labels (30 % positive, a few unknown) and signed heatmap targets."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, cfg.img_size, cfg.img_size, generator=g).to(dev)
    masks = torch.rand(batch, num_aus, *cfg.grid_size, generator=g).to(dev)
    labels = (torch.rand(batch, num_aus, generator=g) < 0.3).float()
    labels[torch.rand(batch, num_aus, generator=g) < 0.05] = -1.0                 # a few unknown labels
    heat = (torch.randn(batch, num_aus, heatmap_size, heatmap_size, generator=g) * 0.5).to(dev)
    return x, masks, labels.to(dev), heat


def train_check(config: str = "config/paper.yaml", *, device: str = "auto", steps: int = 30, batch: int | None = None,
                amp: str | None = None, seed: int = 0, num_aus: int = 12) -> dict:
    """Train the ``model`` section of ``config`` for ``steps`` AdamW steps on one fixed batch; returns a JSON dict.

    Args:
        config: project config; its ``model``, ``loss`` and ``train`` (lr, weight decay, clip) sections are used.
        device: auto, cpu, cuda …; batch: default 64 on CUDA, 4 on CPU; amp: default bf16 on CUDA, none on CPU.
    """
    from au_ttt.data.protocol import DATASETS
    from au_ttt.losses import AULoss
    from au_ttt.model.au_ttt import AUTTT
    from au_ttt.settings import load_settings
    from au_ttt.train.recipe import NonFiniteLoss, build_optimisation, update
    from au_ttt.train.runtime import autocast_for, resolve_device

    dev = resolve_device(device)
    amp = amp or ("bf16" if dev.type == "cuda" else "none")
    if amp not in ("none", "bf16"):
        from au_ttt.errors import InputError

        raise InputError(f"--amp {amp}: training runs in bf16 or fp32 (train.amp), so the training check does too; "
                         "use --amp bf16 or none")
    batch = batch or (64 if dev.type == "cuda" else 4)
    settings = load_settings(config)
    cfg = settings.model
    torch.manual_seed(seed)
    model = AUTTT(cfg, num_aus).to(dev).train()
    size = cfg.img_size
    x, masks, labels, heat = _fixed_batch(cfg, model.heatmap_size, batch, num_aus, seed, dev)
    criterion = AULoss(settings.loss, DATASETS[0], labels.clamp_min(0).mean(0).clamp(0.05, 0.95).cpu()).to(dev)
    # the training loop's own optimisation (timm AdamW, clipping, the loss check) at a constant learning rate
    opt = build_optimisation(model, lr=settings.train.lr, weight_decay=settings.train.weight_decay,
                             total_steps=steps, warmup_steps=0, warmup_lr=settings.train.lr,
                             min_lr=settings.train.lr, grad_clip=settings.train.grad_clip)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    losses, times = [], []
    for i in range(steps):
        t0 = time.perf_counter()
        with autocast_for(dev, amp):
            out = model(x, masks)
        loss = criterion(out.logits.float(), out.heatmaps.float(), labels, heat)["total"]
        losses.append(float(loss.detach()))
        try:
            update(opt, model, loss, where=f"bench step {i + 1}", hint=f"train.lr (now {settings.train.lr:g})")
        except NonFiniteLoss:
            break  # reported below as all_finite: false
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times[1:] or times or [float("nan")])
    return {
        "config": config, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "amp": amp, "batch": batch, "img_size": size, "steps": steps, "lr": settings.train.lr,
        "img_per_s": batch / median, "first_step_s": times[0] if times else float("nan"),
        "peak_mem_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else float("nan"),
        "losses": losses, "all_finite": all(math.isfinite(v) for v in losses),
        "loss_fell": losses[-1] < 0.5 * losses[0] if len(losses) > 1 else False,
    }
