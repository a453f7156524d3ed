"""Score a trained run on a dataset: within-domain (its own test part) or cross-domain (another dataset).

Cross-domain follows FG-Net: the full 12-AU (BP4D) or 8-AU (DISFA) model runs unchanged and only the
AUs both datasets share (1, 2, 4, 6, 12) are scored. The test set is the entire target dataset by default
(the paper's wording); --target-part 1 gives FG-Net's code setting (target part 1 = its fold 0 only).
Writes <out>/metrics.json and <out>/predictions.parquet (per-frame probabilities and labels).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from au_ttt.data.protocol import DATASETS

HELP = "score a trained run within-domain or cross-domain; writes metrics.json + per-frame probabilities"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/config.yaml", help="project config (heatmaps section)")
    parser.add_argument("--run", required=True, type=Path,
                        help="run directory from `au-ttt train` (or an `au-ttt probe` fold)")
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="dataset to score on")
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--crops", required=True, type=Path)
    parser.add_argument("--heatmaps", required=True, type=Path)
    parser.add_argument("--target-part", type=int, choices=[1, 2, 3],
                        help="cross-domain: score only this part of the target (FG-Net uses 1); default: all")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--device", default="auto", help="auto (a free GPU slot, else CPU), cpu, cuda, cuda:N")


def run(args: argparse.Namespace) -> int:
    from au_ttt import engine

    metrics = engine.evaluate(engine.load(args.config), args.run, args.dataset,
                              engine.DataPaths(args.index, args.crops, args.heatmaps), args.out,
                              target_part=args.target_part, device=args.device)
    print(f"{metrics.source} → {metrics.target} ({metrics.test_set}): mean F1 {metrics.f1_mean:.3f} "
          f"over AUs {list(metrics.aus)} (all-positive {metrics.all_positive_f1_mean:.3f}) → {args.out}")
    return 0
