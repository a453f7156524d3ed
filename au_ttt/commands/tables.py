"""Build Tables I–III (Markdown, LaTeX, CSV), Figure 1 and REPORT.md from training and evaluation outputs.

--table1 takes the `au-ttt train` run directories of test parts 1, 2, 3 on BP4D and on DISFA; --table2 the
`au-ttt evaluate` directories of BP4D → DISFA and DISFA → BP4D; --table3 the run directories of the six
ablation variants × 3 folds. With --data real the paper's rows stand beside this run's with the difference;
with --data synthau every title says the numbers are synthetic and no published number appears.
Every number gets a 95 % subject-level bootstrap interval (the runs' predictions.parquet; --resamples,
--bootstrap-seed), every comparison the tables imply a paired interval, and with --data real every published
cell a verdict (tables/comparisons.*, tables/reproduction.*).
--baselines/--baselines-cross add same-protocol rows (other methods trained by this pipeline on the same folds)
to Tables I and II, each compared with AU-TTT. Several seeds of a fold are averaged (their spread shown).
Writes <out>/tables/* (md, tex, csv, html), <out>/figures/{figure1,curves}.png, <out>/metrics.json (every cell
and interval, for `dvc metrics show`), <out>/curves/*.json (for `dvc plots`) and <out>/REPORT.md, and logs each
row's fold mean/std and interval on its MLflow parent run (a tracking failure only warns).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write Tables I-III, Figure 1 and REPORT.md (with MLflow links) from run directories"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from au_ttt.tables.intervals import RESAMPLES, SEED  # (au_ttt.tables imports pandas)

    parser.add_argument("--data", required=True, choices=["synthau", "real"],
                        help="synthau: titles say synthetic, no published rows; real: paper rows + differences")
    parser.add_argument("--table1", required=True, nargs="+", type=Path, metavar="RUN_DIR",
                        help="within-domain runs: test parts 1, 2, 3 of BP4D and of DISFA")
    parser.add_argument("--table2", required=True, nargs="+", type=Path, metavar="CROSS_DIR",
                        help="cross-domain evaluations: BP4D → DISFA and DISFA → BP4D")
    parser.add_argument("--table3", required=True, nargs="+", type=Path, metavar="RUN_DIR",
                        help="ablation runs: the six variants × test parts 1, 2, 3")
    parser.add_argument("--baselines", nargs="+", type=Path, default=[], metavar="RUN_DIR",
                        help="same-protocol baseline runs (timm ViT/ResNet, attention control, `au-ttt probe` folds): "
                        "three folds per dataset and seed; rows of Table I compared with AU-TTT")
    parser.add_argument("--baselines-cross", nargs="+", type=Path, default=[], metavar="CROSS_DIR",
                        help="their cross-domain evaluations: rows of Table II")
    parser.add_argument("--parts", nargs="+", type=int, choices=[1, 2, 3], default=[1, 2, 3], metavar="PART",
                        help="the folds every row must have (default: the protocol's 1 2 3); a run configured with "
                        "fewer (workflow.test_parts) gets tables titled with its folds and no reproduction verdicts")
    parser.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                        help="the Table III rows --table3 holds (default: the paper's six, plus our control when "
                        "it has runs); a config with fewer variants lists its own")
    parser.add_argument("--out", default=Path("results"), type=Path, help="results directory")
    parser.add_argument("--config", default="config/config.yaml",
                        help="project config (tracking section; variants for the Table III marks)")
    parser.add_argument("--resamples", type=_resamples, default=RESAMPLES,
                        help="bootstrap resamples of the test subjects per interval")
    parser.add_argument("--bootstrap-seed", type=int, default=SEED,
                        help="seed of the subject resamples, recorded in every table note")


def _resamples(text: str) -> int:
    value = int(text)
    if value < 1000:
        raise argparse.ArgumentTypeError(f"{value} resamples: a 95 % percentile interval needs at least 1000")
    return value


def run(args: argparse.Namespace) -> int:
    from au_ttt.settings import load_settings
    from au_ttt.tables import make_tables

    settings = load_settings(args.config)
    from au_ttt.tables.intervals import Resampler

    result = make_tables(args.data, args.table1, args.table2, args.table3, args.out, config=str(args.config),
                         settings=settings, resampler=Resampler(args.resamples, args.bootstrap_seed),
                         baseline_runs=args.baselines, baseline_cross=args.baselines_cross,
                         parts=sorted(set(args.parts)), ablation_variants=args.variants)
    for path in result.files:
        print(path)
    print(f"MLflow: {result.tracking_status}")
    return 0
