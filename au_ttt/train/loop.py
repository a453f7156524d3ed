"""Train one (dataset, fold, variant): AdamW + warm-up cosine, grad clipping, bf16 on GPU, resumable.

Order of one epoch (nanoGPT habit: fixed, commented): reseed from (seed, epoch) → shuffle with a
generator seeded the same way → for each batch: forward under autocast, the eq. 11 loss, one update of
:mod:`au_ttt.train.recipe` (non-finite guard, backward, clip, step, schedule) → evaluate the test part →
atomic checkpoint → log. Reseeding per epoch makes a run resumed after a kill -9 replay exactly the
epochs it lost (tested bit for bit on CPU).

A checkpoint is resumed only under the same run key (:mod:`au_ttt.train.runkey`); otherwise the run starts
from the beginning and the log names what changed. Final outputs of an earlier run are removed before
training starts, so a failed or killed run never leaves an older model looking like its result.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from au_ttt.data.batch_transforms import model_images
from au_ttt.data.dataset import set_device_photometric
from au_ttt.fileio import atomic_write, atomic_write_json
from au_ttt.losses import AULoss
from au_ttt.model.au_ttt import save_weights
from au_ttt.model.baselines import build_model
from au_ttt.train.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from au_ttt.train.evaluate import evaluate_model, write_predictions
from au_ttt.train.heartbeat import Heartbeat
from au_ttt.train.recipe import NonFiniteLoss, build_optimisation, update
from au_ttt.train.records import FoldMetrics, RunInfo, RunSpec
from au_ttt.train.runkey import RunKey
from au_ttt.train.runtime import autocast_for, failpoint, seed_epoch, set_threads, worker_init
from au_ttt.train.weights import initialise_from_file

if TYPE_CHECKING:
    from au_ttt.settings import Settings
    from au_ttt.train.config import TrainConfig

__all__ = ["CHECKPOINT", "FINAL_OUTPUTS", "ResumePlan", "RunSpec", "plan_resume", "train_run"]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
# written at the end of a successful run, metrics.json last (its presence means "finished")
FINAL_OUTPUTS = ("predictions.parquet", "history.json", "curves.png", "model.safetensors", "metrics.json")


@dataclass(frozen=True)
class ResumePlan:
    """Whether a run continues from its checkpoint, and the sentence that says why (or why not)."""

    checkpoint: dict[str, Any] | None
    message: str

    @property
    def resumed(self) -> bool:
        return self.checkpoint is not None


def plan_resume(out_dir: str | Path, key: RunKey, resume: bool) -> ResumePlan:
    """Resume from ``<out_dir>/checkpoint.pt`` only if asked and written under the same run key."""
    path = Path(out_dir) / CHECKPOINT
    if not resume:
        return ResumePlan(None, "training from the start (no --resume)")
    if not path.is_file():
        return ResumePlan(None, f"no checkpoint in {path.parent}: training from the start")
    ckpt = load_checkpoint(path)
    stored = ckpt.get("run_key") or {}
    if stored.get("digest") == key.digest:
        return ResumePlan(ckpt, f"resuming after epoch {ckpt['epoch'] + 1} (run key {key.digest[:12]} unchanged)")
    changed = ", ".join(key.changes(stored.get("components")))
    return ResumePlan(None, f"not resuming {path}: {changed} changed since it was written; training from the start")


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _train_epoch(model, loader, criterion, opt, epoch: int, device: torch.device, cfg: TrainConfig, desc: str,
                 progress: bool) -> dict[str, float]:
    model.train()
    sums: dict[str, float] = {}
    n = 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True)
    beat = Heartbeat(log, f"{desc}: training images", len(loader.dataset))
    for i, batch in enumerate(bar):
        failpoint(f"epoch{epoch + 1}.step{i + 1}")
        images = model_images(batch, device)   # uint8 batches (CUDA) get their float work here
        batch = _to(batch, device)
        with autocast_for(device, cfg.amp):
            out = model(images, batch["roi_masks"])
        maps = out.heatmaps.float() if out.heatmaps is not None else None  # plain baselines have none
        parts = criterion(out.logits.float(), maps, batch["labels"], batch["heatmap"],
                          batch["label_mask"])
        update(opt, model, parts["total"], parts=parts, where=f"epoch {epoch + 1}, step {opt.step + 1}",
               hint=f"train.lr (now {cfg.lr:g})")
        bs = images.shape[0]
        n += bs
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * bs
        bar.set_postfix(loss=f"{sums['total'] / n:.4f}", lr=f"{opt.lr:.2e}")
        beat.tick(bs, loss=f"{sums['total'] / n:.4f}")
    return {f"train_{k}": v / max(n, 1) for k, v in sums.items()}


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in row.items() if isinstance(v, int | float) and k != "epoch"}


@dataclass
class _Run:
    """What one run's epochs share: the model, its loss and optimiser, and where it writes."""

    spec: RunSpec
    cfg: TrainConfig
    model: torch.nn.Module
    criterion: AULoss
    opt: Any
    device: torch.device
    out_dir: Path
    key: RunKey
    aus: tuple[int, ...]


def train_run(settings: Settings, spec: RunSpec, train_ds, test_ds, out_dir: str | Path, *, key: RunKey,
              device: torch.device | str, plan: ResumePlan | None = None, tracker=None, progress: bool = True,
              stop_after_epoch: int | None = None) -> FoldMetrics | None:
    """Train ``spec`` on ``train_ds``, evaluate on ``test_ds`` each epoch, write the run directory.

    Outputs in ``out_dir``: ``checkpoint.pt`` (latest, resumable), ``run.json``, and at the end
    :data:`FINAL_OUTPUTS`. ``plan`` (from :func:`plan_resume`) carries the checkpoint to continue;
    ``tracker`` (a :class:`au_ttt.train.tracking.RunLogger`) gets each epoch once, also across resumes.
    ``stop_after_epoch`` returns None after that epoch, before the final outputs (tests of resume).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in FINAL_OUTPUTS:  # an older run's result must never stand beside a new, unfinished one
        (out_dir / name).unlink(missing_ok=True)
    run, info = _build(settings, spec, train_ds, test_ds, out_dir, key, torch.device(device))
    start, history = _restore(run, plan)
    log.info("%s: %s", spec.name, plan.message if plan is not None else "training from the start")
    info.write(out_dir)
    if tracker is not None:  # epochs the checkpoint has but a kill kept from the tracker
        for row in history:
            tracker.log_metrics_once(_scalars(row), step=row["epoch"])
    result, last_scored = None, -1
    t0 = time.time()
    for epoch in range(start, run.cfg.epochs):
        row, scored = _epoch(run, train_ds, test_ds, epoch, t0, progress)
        if scored is not None:
            result, last_scored = scored, epoch + 1
        history.append(row)
        _checkpoint(run, epoch, history, tracker, row)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < run.cfg.epochs:
            return None
    return _finish(run, info, test_ds, history, result if last_scored == run.cfg.epochs else None)


def _build(settings: Settings, spec: RunSpec, train_ds, test_ds, out_dir: Path, key: RunKey,
           device: torch.device) -> tuple[_Run, RunInfo]:
    """Model (seeded, pretrained weights loaded), loss, optimiser and the run.json record."""
    cfg, model_cfg = settings.train, settings.model_for(spec.variant)
    set_threads(cfg.threads)
    for ds in (train_ds, test_ds):   # on a GPU the workers leave the photometric float work to it
        set_device_photometric(ds, device)
    aus = tuple(train_ds.aus)
    seed_epoch(cfg.seed, -1)
    model = build_model(model_cfg, len(aus)).to(device)
    if cfg.pretrained:  # a resumed checkpoint overrides these weights
        initialise_from_file(model, cfg.pretrained)
    rates = _train_rates(train_ds, spec)
    criterion = AULoss(settings.loss, spec.dataset, rates).to(device)
    steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
    opt = build_optimisation(model, lr=cfg.lr, weight_decay=cfg.weight_decay, total_steps=cfg.epochs * steps_per_epoch,
                             warmup_steps=round(cfg.warmup_epochs * steps_per_epoch), warmup_lr=cfg.warmup_lr,
                             min_lr=cfg.min_lr, grad_clip=cfg.grad_clip)
    info = RunInfo(spec=spec, aus=aus, model=model_cfg, train=cfg, loss=settings.loss, heatmaps=settings.heatmaps,
                   train_rates=tuple(float(r) for r in rates), train_frames=len(train_ds), test_frames=len(test_ds),
                   device=str(device), pretrained=cfg.pretrained, run_key=key.digest,
                   run_key_components=dict(key.components), landmarks=settings.landmarks, crops=settings.crops)
    return _Run(spec, cfg, model, criterion, opt, device, out_dir, key, aus), info


def _restore(run: _Run, plan: ResumePlan | None) -> tuple[int, list[dict[str, Any]]]:
    """(first epoch to train, history so far): from the plan's checkpoint, else (0, [])."""
    ckpt = plan.checkpoint if plan is not None else None
    if ckpt is None:
        return 0, []
    run.model.load_state_dict(ckpt["model"])
    run.opt.optimizer.load_state_dict(ckpt["optimizer"])
    run.opt.scheduler.load_state_dict(ckpt["scheduler"])
    restore_rng(ckpt["rng"])
    run.opt.step = ckpt["step"]
    return ckpt["epoch"] + 1, ckpt["history"]


def _epoch(run: _Run, train_ds, test_ds, epoch: int, t0: float,
           progress: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One training epoch and, when due, the test part's scores: (history row, result or None)."""
    cfg, device = run.cfg, run.device
    generator = seed_epoch(cfg.seed, epoch)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, generator=generator,
                        num_workers=cfg.num_workers, pin_memory=device.type == "cuda", persistent_workers=False,
                        worker_init_fn=worker_init if cfg.num_workers else None)
    try:
        row: dict[str, Any] = _train_epoch(run.model, loader, run.criterion, run.opt, epoch, device, cfg,
                                           f"{run.spec.name} epoch {epoch + 1}/{cfg.epochs}", progress)
    except NonFiniteLoss as err:
        kept = (f"the last good checkpoint is {run.out_dir / CHECKPOINT} (epoch {epoch})" if epoch
                else "no checkpoint was written")
        raise NonFiniteLoss(f"{run.spec.name} {err}; {kept}") from None
    row.update(epoch=epoch + 1, step=run.opt.step, lr=run.opt.lr, seconds=time.time() - t0)
    result = None
    if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
        result = evaluate_model(run.model, test_ds, device, cfg.batch_size, cfg.num_workers, cfg.amp)
        row.update(test_f1=float(result["f1_mean"]),
                   **{f"test_f1_AU{a}": float(f) for a, f in zip(run.aus, result["f1"], strict=True)})
    log.info("%s epoch %d/%d: loss %.4f%s", run.spec.name, epoch + 1, cfg.epochs, row["train_total"],
             f", test F1 {row['test_f1']:.3f}" if "test_f1" in row else "")
    return row, result


def _checkpoint(run: _Run, epoch: int, history: list[dict[str, Any]], tracker, row: dict[str, Any]) -> None:
    """The resumable checkpoint after ``epoch``, then the epoch's row to the tracker."""
    save_checkpoint(run.out_dir / CHECKPOINT, model=run.model.state_dict(), optimizer=run.opt.optimizer.state_dict(),
                    scheduler=run.opt.scheduler.state_dict(), rng=rng_state(), epoch=epoch, step=run.opt.step,
                    history=history, run_key=run.key.to_json())
    failpoint(f"epoch{epoch + 1}.checkpointed")
    if tracker is not None:
        tracker.log_metrics_once(_scalars(row), step=epoch + 1)


def _finish(run: _Run, info: RunInfo, test_ds, history: list[dict[str, Any]],
            final: dict[str, Any] | None) -> FoldMetrics:
    """The final outputs; ``final`` is the last epoch's scores when it was scored (else scored now)."""
    cfg = run.cfg
    # the last epoch's evaluation already scored these weights: a second pass over the test part (50 k frames
    # at full size) would give the same numbers
    if final is None:
        final = evaluate_model(run.model, test_ds, run.device, cfg.batch_size, cfg.num_workers, cfg.amp)
    metrics = FoldMetrics.from_result(run.spec, run.aus, final, history, run_key=run.key.digest)
    write_predictions(run.out_dir / "predictions.parquet", test_ds, final, run.aus)
    atomic_write_json(run.out_dir / "history.json", history)
    _plot_curves(history, run.out_dir / "curves.png", run.spec.name)
    save_weights(run.model, run.out_dir / "model.safetensors", {"run": json.dumps(info.to_json())})
    metrics.write(run.out_dir)
    return metrics


def _train_rates(train_ds, spec: RunSpec) -> np.ndarray:
    """Occurrence rate per AU over the training frames with a known label (MDWA/WDI weights need r > 0)."""
    from au_ttt.data.frame_index import class_weights, occurrence_rates

    rates = occurrence_rates(np.where(train_ds.label_mask, train_ds.labels, -1))
    class_weights(rates, [f"AU{a}" for a in train_ds.aus], spec.name)  # raises, naming the AU and run
    return rates


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
