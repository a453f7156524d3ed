"""Merge per-subject shards of landmarks, crops and heatmaps into one file/store/cache per dataset.

  au-ttt gather --index index.parquet --shards SHARD1 SHARD2 … [--out-landmarks landmarks.npz]
                [--out-crops CROPS_DIR] [--out-heatmaps CACHE_DIR]

Each SHARD folder holds ``landmarks.npz``, ``crops/`` and ``heatmaps/`` written by ``au-ttt landmarks``,
``crops`` and ``heatmaps`` with the same ``--subjects`` list. The command first checks that the shards were
made for this index and cover every row exactly once (an error names the missing or doubled subjects),
then writes the requested outputs atomically. They are byte-identical to what the unsharded commands
write; crops are hard links into the shard stores (copies across file systems). Reports are written as
the unsharded commands write them (``<landmarks>.report.json``, ``CROPS_DIR/crops.report.json``,
``CACHE_DIR/manifest.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "merge landmark/crop/heatmap shards (one per subject list) into the per-dataset outputs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", type=Path, required=True, help="the full frame index the shards split")
    parser.add_argument("--shards", type=Path, nargs="+", required=True, metavar="SHARD_DIR",
                        help="shard folders, each with landmarks.npz, crops/ and heatmaps/")
    parser.add_argument("--out-landmarks", type=Path, default=None, help="merged landmark file (.npz)")
    parser.add_argument("--out-crops", type=Path, default=None, help="merged crop store folder")
    parser.add_argument("--out-heatmaps", type=Path, default=None, help="merged heatmap cache folder")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from au_ttt.commands.landmarks import print_report
    from au_ttt.data.frame_index import load_index
    from au_ttt.data.gather import (
        merge_aligned,
        merge_heatmaps,
        merge_landmarks,
        plan_shards,
        write_merged_crops,
    )
    from au_ttt.data.landmarks import landmarks_report, save_landmarks
    from au_ttt.errors import InputError
    from au_ttt.fileio import atomic_write_json

    kinds = tuple(k for k, out in (("landmarks", args.out_landmarks), ("crops", args.out_crops or args.out_heatmaps),
                                   ("heatmaps", args.out_heatmaps)) if out is not None)
    if not kinds:
        raise InputError("nothing to gather: give --out-landmarks, --out-crops and/or --out-heatmaps")
    index = load_index(args.index)
    shards = plan_shards(index, args.shards, kinds)
    print(f"{len(shards)} shards cover all {len(index)} rows of {args.index} "
          f"({index['subject'].nunique()} subjects)")
    if args.out_landmarks is not None:
        lms = merge_landmarks(index, shards)
        save_landmarks(args.out_landmarks, lms)
        report = {**landmarks_report(lms, index), "index": str(args.index)}
        atomic_write_json(args.out_landmarks.with_suffix(".report.json"), report)
        print(f"landmarks -> {args.out_landmarks}")
        print_report(report)
    if args.out_crops is not None or args.out_heatmaps is not None:
        aligned = merge_aligned(index, shards)
        if args.out_crops is not None:
            report = write_merged_crops(index, shards, aligned, args.out_crops, progress=not args.no_progress)
            print(f"crops -> {args.out_crops}")
            print_report(report)
        if args.out_heatmaps is not None:
            manifest = merge_heatmaps(index, shards, aligned, args.out_heatmaps)
            print(f"heatmaps -> {args.out_heatmaps}")
            print(json.dumps({k: v for k, v in manifest.items() if k != "params"}, indent=2))
    return 0
