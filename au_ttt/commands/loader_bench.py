"""Measure how many images per second (and per CPU-second, i.e. per core) the AUFrameDataset loader delivers.

  au-ttt loader-bench --config config/paper.yaml --index index.parquet --crops CROPS --heatmaps CACHE \\
                      [--workers 0 1 2] [--batch-size 64] [--device-photometric] [--out loader.json]

``--device-photometric`` measures the loader as a CUDA training job runs it: workers return uint8 crops and
the GPU does the float work (au_ttt.data.batch_transforms); without it, as a CPU job runs it. The output
adds, per worker count, images per CPU-second (what one core sustains on a shared machine) and the cores it
takes to feed 1 and 4 GPUs at the cost plan's training rate (au_ttt.planning.loading).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from au_ttt.commands.landmarks import add_common, section_with_overrides

HELP = "data-loader throughput (img/s, img per CPU-second) of the training Dataset, and the cores to feed GPUs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--crops", type=Path, required=True, help="crop store of `au-ttt crops`")
    parser.add_argument("--heatmaps", type=Path, required=True, help="cache directory of `au-ttt heatmaps`")
    parser.add_argument("--test-part", type=int, default=1, choices=(1, 2, 3), help="fold = its test part")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=None, help="default: train.batch_size of --config, else 32")
    parser.add_argument("--batches", type=int, default=10, help="timed batches after one warm-up batch")
    parser.add_argument("--device-photometric", action="store_true",
                        help="uint8 batches, float work left to the GPU (how CUDA training loads)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")


def run(args: argparse.Namespace) -> int:
    import torch

    from au_ttt.data.dataset import AUFrameDataset, benchmark_loader, split_rows
    from au_ttt.data.frame_index import load_index
    from au_ttt.data.heatmaps import HeatmapConfig
    from au_ttt.fileio import atomic_write_json
    from au_ttt.planning.loading import feeding_cores

    torch.set_num_threads(1)   # loader workers run one thread each (au_ttt.train.runtime.worker_init)
    cfg = section_with_overrides(args.config, "heatmaps", HeatmapConfig)
    batch = args.batch_size or _config_batch(args.config) or 32
    index = load_index(args.index)
    ds = AUFrameDataset(index, args.crops, args.heatmaps, rows=split_rows(index, args.test_part, args.split),
                        train=args.split == "train", cfg=cfg)
    ds.device_photometric = args.device_photometric
    results = [benchmark_loader(ds, batch, w, args.batches) for w in args.workers]
    per_core = max((r["images_per_cpu_s"] or 0) for r in results)
    summary = {"frames": len(ds), "excluded": ds.excluded, "split": args.split, "batch_size": batch,
               "device_photometric": args.device_photometric, "results": results,
               "feeding": feeding_cores(per_core) if per_core else None}
    if args.out is not None:
        atomic_write_json(args.out, summary)
    print(json.dumps(summary, indent=2))
    return 0


def _config_batch(config: Path | None) -> int | None:
    if config is None:
        return None
    from au_ttt.config import load_section
    from au_ttt.train.config import TrainConfig

    return load_section(config, "train", TrainConfig).batch_size
