"""Evaluate a finished run on a (possibly different) dataset — the engine of ``au-ttt evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from au_ttt.config import from_dict
from au_ttt.data.protocol import AUS
from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write_json
from au_ttt.metrics import cross_domain_columns
from au_ttt.model.config import ModelConfig

__all__ = ["evaluate_run", "load_run"]


def load_run(run_dir: str | Path):
    """(run.json contents, model with the run's final weights) — missing files are clear errors."""
    from au_ttt.model.au_ttt import AUTTT, load_pretrained

    run_dir = Path(run_dir)
    info_path, weights = run_dir / "run.json", run_dir / "model.safetensors"
    for path in (info_path, weights):
        if not path.is_file():
            raise InputError(f"{path}: missing — is {run_dir} a finished `au-ttt train` run directory?")
    info = json.loads(info_path.read_text())
    model = AUTTT(from_dict(ModelConfig, info["model"], source=str(info_path), prefix="model."), len(info["aus"]))
    report = load_pretrained(model, weights)
    if report.missing or report.unexpected:
        raise InputError(f"{weights}: does not match the run's model ({report.summary()})")
    return info, model


def evaluate_run(settings, run_dir, target: str, index, crops, heatmaps, out_dir, *,
                 target_part: int | None = None, device: str = "auto") -> dict[str, Any]:
    from au_ttt.train.data import DataPaths, load_split
    from au_ttt.train.evaluate import evaluate_model, write_predictions
    from au_ttt.train.loop import resolve_device

    info, model = load_run(run_dir)
    source, source_aus = info["spec"]["dataset"], tuple(info["aus"])
    if source_aus != AUS[source]:
        raise InputError(f"{run_dir}: run AUs {source_aus} are not {source}'s {AUS[source]}")
    img = info["model"]["img_size"]
    if settings.heatmaps.input_size != img:
        raise InputError(f"{settings.source}: heatmaps.input_size {settings.heatmaps.input_size} ≠ the run's "
                         f"img_size {img}")
    paths = DataPaths(Path(index), Path(crops), Path(heatmaps))
    if target == source:
        part, split, test_set = info["spec"]["test_part"], "test", f"{target} part {info['spec']['test_part']}"
        out_idx = label_idx = None
        aus = source_aus
    else:
        part = target_part or 1
        split = "test" if target_part else "all"
        test_set = f"{target} part {target_part} only (FG-Net)" if target_part else f"entire {target} dataset"
        out_idx, label_idx, aus = cross_domain_columns(source, target)
    dataset = load_split(settings, paths, target, part, split, label_aus=AUS[target], mask_aus=source_aus)
    dev = resolve_device(device)
    model.to(dev)
    result = evaluate_model(model, dataset, dev, info["train"]["batch_size"], 0, info["train"]["amp"],
                            out_index=out_idx, label_index=label_idx)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.parquet", dataset, result, aus)
    metrics = {
        "run": str(run_dir), "source": source, "target": target, "trained_on_parts":
            [p for p in (1, 2, 3) if p != info["spec"]["test_part"]], "test_set": test_set,
        "variant": info["spec"]["variant"], "epoch_policy": "last epoch", "aus": list(aus),
        "f1": {f"AU{a}": float(f) for a, f in zip(aus, result["f1"], strict=True)},
        "f1_mean": result["f1_mean"], "all_positive_f1_mean": result["all_positive_f1_mean"],
        "test_frames": result["frames"],
    }
    atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics
