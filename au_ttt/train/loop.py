"""Train one (dataset, fold, variant): AdamW + warm-up cosine, grad clipping, bf16 on GPU, resumable.

Order of one epoch (nanoGPT habit: fixed, commented): reseed from (seed, epoch) → shuffle with a
generator seeded the same way → for each batch: forward under autocast, the eq. 11 loss, backward, clip,
step, scheduler update → evaluate the test part → atomic checkpoint → log. Reseeding per epoch makes a
run resumed after a kill -9 replay exactly the epochs it lost (tested bit-for-bit on CPU).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from au_ttt.config import to_dict
from au_ttt.fileio import atomic_write, atomic_write_json
from au_ttt.losses import AULoss
from au_ttt.model.au_ttt import AUTTT, load_pretrained, save_weights
from au_ttt.train.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from au_ttt.train.evaluate import evaluate_model, write_predictions

__all__ = ["RunSpec", "autocast_for", "resolve_device", "train_run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """What one training job is: the dataset, the fold (named by its test part) and the Table III variant."""

    dataset: str
    test_part: int
    variant: str | None = None

    @property
    def name(self) -> str:
        return f"{self.dataset}-test{self.test_part}-{self.variant or 'model'}"


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.warning("no CUDA device: training on the CPU")
        return torch.device("cpu")
    return torch.device(device)


def autocast_for(device: torch.device, amp: str):
    """bf16 autocast on CUDA when amp is 'auto'/'bf16'; the TTT inner state stays fp32 regardless."""
    use = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use)


def _seed_epoch(seed: int, epoch: int) -> torch.Generator:
    s = seed * 100_003 + epoch
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def _build_optimisation(model: AUTTT, cfg, steps_per_epoch: int):
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    optimizer = create_optimizer_v2(model, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * steps_per_epoch
    scheduler = CosineLRScheduler(optimizer, t_initial=total, lr_min=cfg.min_lr,
                                  warmup_t=round(cfg.warmup_epochs * steps_per_epoch),
                                  warmup_lr_init=cfg.warmup_lr, t_in_epochs=False)
    return optimizer, scheduler


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _train_epoch(model, loader, criterion, optimizer, scheduler, step: int, device, cfg, desc: str,
                 progress: bool) -> tuple[dict[str, float], int]:
    model.train()
    sums: dict[str, float] = {}
    n = 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True)
    for batch in bar:
        batch = _to(batch, device)
        with autocast_for(device, cfg.amp):
            out = model(batch["image"], batch["roi_masks"])
        parts = criterion(out.logits.float(), out.heatmaps.float(), batch["labels"], batch["heatmap"],
                          batch["label_mask"])
        optimizer.zero_grad(set_to_none=True)
        parts["total"].backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        scheduler.step_update(step)
        bs = batch["image"].shape[0]
        n += bs
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * bs
        bar.set_postfix(loss=f"{sums['total'] / n:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    return {f"train_{k}": v / max(n, 1) for k, v in sums.items()}, step


def train_run(settings, spec: RunSpec, train_ds, test_ds, out_dir: str | Path, *, device: str = "auto",
              resume: bool = False, tracker=None, progress: bool = True, stop_after_epoch: int | None = None
              ) -> dict[str, Any]:
    """Train ``spec`` on ``train_ds``, evaluate on ``test_ds`` each epoch, write the run directory.

    Outputs in ``out_dir``: ``checkpoint.pt`` (latest, resumable), ``model.safetensors`` (final weights),
    ``history.json``, ``metrics.json`` (last epoch), ``predictions.parquet`` (per-frame probabilities),
    ``curves.png``. ``stop_after_epoch`` ends the process after that epoch (tests of resume).
    """
    cfg, model_cfg = settings.train, settings.model_for(spec.variant)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dev = resolve_device(device)
    aus = tuple(train_ds.aus)
    _seed_epoch(cfg.seed, -1)
    model = AUTTT(model_cfg, len(aus)).to(dev)
    if cfg.pretrained:  # a resumed checkpoint below overrides these weights
        report = load_pretrained(model, cfg.pretrained)
        log.info("pretrained backbone %s: %s", cfg.pretrained, report.summary())
    rates = _train_rates(train_ds, spec)
    criterion = AULoss(settings.loss, spec.dataset, rates).to(dev)
    steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
    optimizer, scheduler = _build_optimisation(model, cfg, steps_per_epoch)

    ckpt_path = out_dir / "checkpoint.pt"
    start, step, history = 0, 0, []
    run_info = {"spec": asdict(spec), "aus": list(aus), "model": to_dict(model_cfg), "train": to_dict(cfg),
                "loss": to_dict(settings.loss), "train_rates": [float(r) for r in rates],
                "train_frames": len(train_ds), "test_frames": len(test_ds), "device": str(dev)}
    ckpt = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if ckpt is not None and _comparable(ckpt["run"]) != _comparable(run_info):
        log.warning("%s was written with another configuration or data: starting fresh, not resuming", ckpt_path)
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        restore_rng(ckpt["rng"])
        start, step, history = ckpt["epoch"] + 1, ckpt["step"], ckpt["history"]
        log.info("resumed %s after epoch %d (step %d)", spec.name, ckpt["epoch"] + 1, step)
    elif resume:
        log.info("no usable checkpoint in %s: starting fresh", out_dir)

    atomic_write_json(out_dir / "run.json", run_info)
    t0 = time.time()
    for epoch in range(start, cfg.epochs):
        generator = _seed_epoch(cfg.seed, epoch)
        loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, generator=generator,
                            num_workers=cfg.num_workers, pin_memory=dev.type == "cuda",
                            persistent_workers=False)
        row, step = _train_epoch(model, loader, criterion, optimizer, scheduler, step, dev, cfg,
                                 f"{spec.name} epoch {epoch + 1}/{cfg.epochs}", progress)
        row.update(epoch=epoch + 1, step=step, lr=optimizer.param_groups[0]["lr"], seconds=time.time() - t0)
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            result = evaluate_model(model, test_ds, dev, cfg.batch_size, cfg.num_workers, cfg.amp)
            row.update(test_f1=float(result["f1_mean"]),
                       **{f"test_f1_AU{a}": float(f) for a, f in zip(aus, result["f1"], strict=True)})
        history.append(row)
        log.info("%s epoch %d/%d: loss %.4f%s", spec.name, epoch + 1, cfg.epochs, row["train_total"],
                 f", test F1 {row['test_f1']:.3f}" if "test_f1" in row else "")
        save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), rng=rng_state(), epoch=epoch, step=step,
                        history=history, run=run_info)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in row.items() if isinstance(v, int | float)}, step=epoch + 1)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            return {"stopped_after_epoch": epoch + 1}

    final = evaluate_model(model, test_ds, dev, cfg.batch_size, cfg.num_workers, cfg.amp)
    save_weights(model, out_dir / "model.safetensors", {"run": json.dumps(run_info)})
    write_predictions(out_dir / "predictions.parquet", test_ds, final, aus)
    metrics = _final_metrics(spec, aus, final, history)
    atomic_write_json(out_dir / "history.json", history)
    atomic_write_json(out_dir / "metrics.json", metrics)
    _plot_curves(history, out_dir / "curves.png", spec.name)
    return metrics


def _comparable(run_info: dict) -> dict:
    """What must match for a checkpoint to be resumed: everything but the device (and worker/thread counts)."""
    train = {k: v for k, v in run_info["train"].items() if k not in ("num_workers", "threads")}
    return {**{k: v for k, v in run_info.items() if k not in ("device", "train")}, "train": train}


def _train_rates(train_ds, spec: RunSpec) -> np.ndarray:
    """Occurrence rate per AU over the training frames with a known label (MDWA/WDI weights need r > 0)."""
    from au_ttt.data.frame_index import class_weights, occurrence_rates

    rates = occurrence_rates(np.where(train_ds.label_mask, train_ds.labels, -1))
    class_weights(rates, [f"AU{a}" for a in train_ds.aus], spec.name)  # raises, naming the AU and run
    return rates


def _final_metrics(spec: RunSpec, aus, final: dict, history: list[dict]) -> dict[str, Any]:
    """Last-epoch F1 is the reported number; best-epoch-on-test is kept apart and labelled as such."""
    scored = [h for h in history if "test_f1" in h]
    best = max(scored, key=lambda h: h["test_f1"]) if scored else None
    return {
        "run": spec.name, "dataset": spec.dataset, "test_part": spec.test_part, "variant": spec.variant,
        "epoch_policy": "last epoch", "aus": list(aus),
        "f1": dict(zip([f"AU{a}" for a in aus], map(float, final["f1"]), strict=True)),
        "f1_mean": float(final["f1_mean"]), "all_positive_f1_mean": float(final["all_positive_f1_mean"]),
        "test_frames": int(final["frames"]),
        "best_epoch_on_test (optimistic, not the reported number)":
            {"epoch": best["epoch"], "f1_mean": best["test_f1"]} if best else None,
    }


def _plot_curves(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for key in ("train_total", "train_mdwa", "train_wdi", "train_mse"):
        ax1.plot(epochs, [h[key] for h in history], label=key.removeprefix("train_"))
    ax1.set(xlabel="epoch", ylabel="training loss", title=title)
    ax1.legend(fontsize=7)
    scored = [h for h in history if "test_f1" in h]
    ax2.plot([h["epoch"] for h in scored], [h["test_f1"] for h in scored], marker="o")
    ax2.set(xlabel="epoch", ylabel="mean F1 (test part)", ylim=(0, 1))
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
