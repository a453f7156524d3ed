"""Measure how many images per second the AUFrameDataset loader delivers (0 and 2 workers by default).

  au-ttt loader-bench --index index.parquet --crops CROPS_DIR --heatmaps CACHE_DIR [--workers 0 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from au_ttt.commands.landmarks import add_common, section_with_overrides

HELP = "data-loader throughput (img/s) of the training Dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--crops", type=Path, required=True, help="crop store of `au-ttt crops`")
    parser.add_argument("--heatmaps", type=Path, required=True, help="cache directory of `au-ttt heatmaps`")
    parser.add_argument("--test-part", type=int, default=1, choices=(1, 2, 3), help="fold = its test part")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10, help="timed batches after one warm-up batch")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")


def run(args: argparse.Namespace) -> int:
    from au_ttt.data.dataset import AUFrameDataset, benchmark_loader, split_rows
    from au_ttt.data.frame_index import load_index
    from au_ttt.data.heatmaps import HeatmapConfig
    from au_ttt.fileio import atomic_write_json

    cfg = section_with_overrides(args.config, "heatmaps", HeatmapConfig)
    index = load_index(args.index)
    ds = AUFrameDataset(index, args.crops, args.heatmaps, rows=split_rows(index, args.test_part, args.split),
                        train=args.split == "train", cfg=cfg)
    results = [benchmark_loader(ds, args.batch_size, w, args.batches) for w in args.workers]
    summary = {"frames": len(ds), "excluded": ds.excluded, "results": results}
    if args.out is not None:
        atomic_write_json(args.out, summary)
    print(json.dumps(summary, indent=2))
    return 0
