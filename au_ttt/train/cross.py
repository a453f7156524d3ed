"""Evaluate a finished run on a (possibly different) dataset — the engine of ``au-ttt evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from au_ttt.data.dataset import set_device_photometric
from au_ttt.data.protocol import AUS
from au_ttt.errors import InputError
from au_ttt.metrics import cross_domain_columns
from au_ttt.model.baselines import build_model
from au_ttt.train.data import DataPaths, load_split
from au_ttt.train.evaluate import evaluate_model, write_predictions
from au_ttt.train.records import CrossMetrics, RunInfo

if TYPE_CHECKING:
    from au_ttt.settings import Settings

__all__ = ["evaluate_run", "load_run"]


def load_run(run_dir: str | Path) -> tuple[RunInfo, torch.nn.Module]:
    """(run.json record, model with the run's final weights); missing or corrupt files are clear errors."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    weights = run_dir / "model.safetensors"
    info = RunInfo.read(run_dir)
    if not weights.is_file():
        raise InputError(f"{weights}: missing — is {run_dir} a finished `au-ttt train` run directory? "
                         "(a run that stopped early has no final model; rerun `au-ttt train --resume`)")
    try:
        state = load_file(str(weights))
    except Exception as err:  # SafetensorError / OSError: truncated or foreign file
        raise InputError(f"{weights}: not a readable safetensors file ({type(err).__name__}: {str(err)[:200]}); "
                         "rerun `au-ttt train` for this run") from None
    model = build_model(info.model, len(info.aus))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise InputError(f"{weights}: does not match the model in {run_dir / RunInfo.FILE} "
                         f"({len(result.missing_keys)} missing, {len(result.unexpected_keys)} unexpected keys, e.g. "
                         f"{(result.missing_keys or result.unexpected_keys)[0]}); rerun `au-ttt train` for this run")
    return info, model


def evaluate_run(settings: Settings, run_dir: str | Path, target: str, index: str | Path, crops: str | Path,
                 heatmaps: str | Path, out_dir: str | Path, *, device: torch.device,
                 target_part: int | None = None) -> CrossMetrics:
    """Score the run in ``run_dir`` on ``target``: its own test part, or (cross-domain) the shared AUs of the
    entire target dataset (``target_part``: only that part, FG-Net's setting)."""
    out_dir = Path(out_dir)
    (out_dir / CrossMetrics.FILE).unlink(missing_ok=True)  # never leave an older score beside a failed rerun
    info, model = load_run(run_dir)
    source, source_aus = info.spec.dataset, tuple(info.aus)
    if source_aus != AUS[source]:
        raise InputError(f"{run_dir}: run AUs {source_aus} are not {source}'s {AUS[source]}")
    img = info.model.img_size
    if settings.heatmaps.input_size != img:
        raise InputError(f"{settings.source}: heatmaps.input_size {settings.heatmaps.input_size} ≠ the run's "
                         f"img_size {img}")
    paths = DataPaths(Path(index), Path(crops), Path(heatmaps))
    if target == source:
        part, split, test_set = info.spec.test_part, "test", f"{target} part {info.spec.test_part}"
        out_idx = label_idx = None
        aus = source_aus
    else:
        part = target_part or 1
        split = "test" if target_part else "all"
        test_set = f"{target} part {target_part} only (FG-Net)" if target_part else f"entire {target} dataset"
        out_idx, label_idx, aus = cross_domain_columns(source, target)
    dataset = load_split(settings, paths, target, part, split, label_aus=AUS[target], mask_aus=source_aus)
    set_device_photometric(dataset, device)
    model.to(device)
    # the whole target (146,847 BP4D frames) with this config's loader workers: in-process loading made
    # the scoring loader-bound (docs/scaling.md)
    result = evaluate_model(model, dataset, device, info.train.batch_size, settings.train.num_workers,
                            info.train.amp, out_index=out_idx, label_index=label_idx)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.parquet", dataset, result, aus)
    metrics = CrossMetrics(
        run=str(run_dir), source=source, target=target, test_set=test_set, aus=tuple(aus),
        f1={f"AU{a}": float(f) for a, f in zip(aus, result["f1"], strict=True)},
        f1_mean=result["f1_mean"], all_positive_f1_mean=result["all_positive_f1_mean"],
        trained_on_parts=tuple(p for p in (1, 2, 3) if p != info.spec.test_part), variant=info.spec.variant,
        test_frames=result["frames"])
    metrics.write(out_dir)
    return metrics
