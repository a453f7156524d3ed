"""Score a trained run on a dataset: within-domain (its own test part) or cross-domain (another dataset).

Cross-domain follows FG-Net: the full 12-AU (BP4D) or 8-AU (DISFA) model runs unchanged and only the
AUs both datasets share (1, 2, 4, 6, 12) are scored. The test set is the entire target dataset by default
(the paper's wording); --target-part 1 gives FG-Net's code setting (target part 1 = its fold 0 only).
Writes <out>/metrics.json and <out>/predictions.parquet (per-frame probabilities and labels).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "score a trained run within-domain or cross-domain; writes metrics.json + per-frame probabilities"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/config.yaml", help="project config (heatmaps section)")
    parser.add_argument("--run", required=True, type=Path,
                        help="run directory from `au-ttt train` (or an `au-ttt probe` fold)")
    parser.add_argument("--dataset", required=True, choices=["bp4d", "disfa"], help="dataset to score on")
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--crops", required=True, type=Path)
    parser.add_argument("--heatmaps", required=True, type=Path)
    parser.add_argument("--target-part", type=int, choices=[1, 2, 3],
                        help="cross-domain: score only this part of the target (FG-Net uses 1); default: all")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--device", default="auto", help="auto (a free GPU slot, else CPU), cpu, cuda, cuda:N")


def run(args: argparse.Namespace) -> int:
    from au_ttt.settings import load_settings
    from au_ttt.train.cross import evaluate_run
    from au_ttt.train.probe import PROBE_FILE, probe_cross
    from au_ttt.train.runtime import job_device

    settings = load_settings(args.config)
    if (args.run / PROBE_FILE).is_file():  # an `au-ttt probe` fold: its fit scores the target, no device needed
        from au_ttt.train.data import DataPaths

        metrics = probe_cross(settings, args.run, args.dataset, DataPaths(args.index, args.crops, args.heatmaps),
                              args.out, target_part=args.target_part)
    else:
        with job_device(args.device) as place:
            metrics = evaluate_run(settings, args.run, args.dataset, args.index, args.crops, args.heatmaps,
                                   args.out, target_part=args.target_part, device=place.device)
    _print(metrics, args.out)
    return 0


def _print(metrics, out: Path) -> None:
    print(f"{metrics.source} → {metrics.target} ({metrics.test_set}): mean F1 {metrics.f1_mean:.3f} "
          f"over AUs {list(metrics.aus)} (all-positive {metrics.all_positive_f1_mean:.3f}) → {out}")
