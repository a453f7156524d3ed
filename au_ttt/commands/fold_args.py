"""The arguments that name one fold's data: shared by every command that trains or fits on a fold.

Why: `au-ttt train` and `au-ttt probe` are rows of the same tables; one definition keeps their flags, choices
and help identical (a dataset plug-in appears in both at once).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from au_ttt.data.protocol import DATASETS


def add_fold_arguments(parser: argparse.ArgumentParser, fits: str = "trains") -> None:
    """--dataset, --test-part, --index, --crops, --heatmaps, --out (the run directory)."""
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--test-part", type=int, required=True, choices=[1, 2, 3],
                        help=f"the fold, named by the part it tests on ({fits} on the other two)")
    parser.add_argument("--index", required=True, type=Path, help="frame index parquet")
    parser.add_argument("--crops", required=True, type=Path, help="aligned crop store")
    parser.add_argument("--heatmaps", required=True, type=Path, help="AU-centre cache directory (the loader reads it)")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
