"""Fit the HOG + logistic-regression probe on one fold, the way `au-ttt train` trains a model on it.

Same frame index, crop store, folds, subjects and threshold as the training runs, so the probe is a
same-protocol row of Tables I and II with paired intervals (au_ttt/train/probe.py). Writes <out>/metrics.json,
predictions.parquet, probe.npz and probe.json, and a tracked run (MLflow child of --parent) like `au-ttt train`.
`au-ttt evaluate --run <out> --dataset <other>` scores the fit cross-domain.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from au_ttt.commands.fold_args import add_fold_arguments

if TYPE_CHECKING:
    from au_ttt.settings import Settings
    from au_ttt.train.data import DataPaths

HELP = "fit the HOG + logistic-regression probe on one fold (a same-protocol table row)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/config.yaml", help="project config (heatmaps, tracking)")
    add_fold_arguments(parser, fits="fits")
    parser.add_argument("--C", type=float, default=0.05, dest="c", help="inverse L2 strength of the regression")
    parser.add_argument("--cell", type=int, default=8, choices=[4, 8, 16],
                        help="HOG cell size in pixels (16 = the demo models' 16 px patches)")
    parser.add_argument("--parent", help="MLflow parent run (the table row), default 'baselines/<dataset>/hog_lr'")


def run(args: argparse.Namespace) -> int:
    from au_ttt.locks import run_dir_lock
    from au_ttt.settings import load_settings
    from au_ttt.train.data import DataPaths

    settings = load_settings(args.config)
    paths = DataPaths(args.index, args.crops, args.heatmaps)
    paths.check()
    with run_dir_lock(args.out):  # one process per --out, as `au-ttt train`
        return _probe(args, settings, paths)


def _probe(args: argparse.Namespace, settings: Settings, paths: DataPaths) -> int:
    """The fit itself, with ``args.out`` held by this process."""
    from au_ttt.train.probe import PROBE_VARIANT, probe_fold
    from au_ttt.train.tracking import RunLogger

    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{args.dataset}-test{args.test_part}-{PROBE_VARIANT}"
    tags = {"dataset": args.dataset, "test_part": args.test_part, "variant": PROBE_VARIANT, "kind": "probe"}
    config = {"probe": {"C": args.c, "features": "hog", "cell": args.cell}, "heatmaps": settings.resolved()["heatmaps"]}
    with RunLogger(settings.tracking, args.out, run_name=name, tags=tags, manifest=args.index, config=config,
                   parent=args.parent or f"baselines/{args.dataset}/{PROBE_VARIANT}") as run:
        from au_ttt.train.mlflow_inputs import log_fold_dataset

        log_fold_dataset(run, args.index, args.dataset, args.test_part)
        metrics = probe_fold(settings, paths, args.dataset, args.test_part, args.out, args.c, args.cell)
        run.log_metrics({"final_f1_mean": metrics.f1_mean, **{f"final_f1_{k}": v for k, v in metrics.f1.items()}})
        run.log_artifact(args.out / "metrics.json")
    print(f"{name}: mean F1 {metrics.f1_mean:.3f} (all-positive {metrics.all_positive_f1_mean:.3f}) on "
          f"{metrics.test_frames} test frames → {args.out}")
    return 0
