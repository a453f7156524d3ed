"""HOG + logistic-regression baseline on a BP4D-format and a DISFA-format root (e.g. SynthAU).

  au-ttt baseline --bp4d data/synthau/BP4D --disfa data/synthau/DISFA --out results/baseline

Subject-exclusive 3-fold F1 per AU against all-positive, plus cross-domain on AUs 1, 2, 4, 6, 12; writes
``baseline.json`` and ``baseline.md`` into ``--out`` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from au_ttt.fileio import atomic_write_text

HELP = "HOG + logistic regression per AU: 3-fold, all-positive and cross-domain F1 (learnability check)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bp4d", type=Path, required=True, help="BP4D-format root (AUCoding/, 2DFeatures/)")
    parser.add_argument("--disfa", type=Path, required=True,
                        help="DISFA-format root (ActionUnit_Labels/, Videos_LeftCamera/, Landmark_Points/)")
    parser.add_argument("--out", type=Path, required=True, help="folder for baseline.json and baseline.md")
    parser.add_argument("--C", type=float, default=0.05, dest="c", help="inverse L2 strength of the regression")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from au_ttt.data.baseline import baseline_report, load_bp4d, load_disfa, run_baseline

    bp4d = load_bp4d(args.bp4d, progress=not args.no_progress)
    disfa = load_disfa(args.disfa, progress=not args.no_progress)
    result = run_baseline(bp4d, disfa, c=args.c)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "baseline.json", json.dumps(result, indent=2) + "\n")
    report = baseline_report(result)
    atomic_write_text(args.out / "baseline.md", report)
    print(report)
    return 0
