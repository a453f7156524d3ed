"""Does a scoring loader's memory grow with the dataset? Peak PSS of one process and its 8 loader workers after
the same number of batches, on a rehearsal's whole-target split (as `au-ttt evaluate` cross-domain loads it).

Run it on two rehearsals of different size (scripts/full_rehearsal.py): the difference over the difference in
frames is what each frame costs across the process tree (index rows, labels, AU centres, copied into workers
as they touch them). PSS shares the pages the workers inherited, so the sum is honest.

  python scripts/loader_memory.py --work /work/rehearsal-data/full --dataset bp4d
  python scripts/loader_memory.py --work /work/rehearsal-data/small --dataset bp4d
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import psutil
from torch.utils.data import DataLoader

from au_ttt.data.protocol import AUS
from au_ttt.settings import load_settings
from au_ttt.train.data import DataPaths, load_split
from au_ttt.train.evaluate import worker_init


def tree_pss_mb() -> float:
    me = psutil.Process()
    total = 0
    for proc in (me, *me.children(recursive=True)):
        with contextlib.suppress(psutil.Error):   # a worker that just ended
            total += proc.memory_full_info().pss
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a finished rehearsal's work folder")
    parser.add_argument("--dataset", default="bp4d")
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    settings = load_settings(args.work / "results/config/resolved.yaml")
    data = args.work / "results/data" / args.dataset
    other = next(d for d in AUS if d != args.dataset)
    dataset = load_split(settings, DataPaths(data / "index.parquet", data / "crops", data / "heatmaps"),
                         args.dataset, 1, "all", label_aus=AUS[args.dataset], mask_aus=AUS[other])
    loader = DataLoader(dataset, batch_size=64, num_workers=args.workers, worker_init_fn=worker_init)
    peak = 0.0
    for i, _ in enumerate(loader):
        if i % 5 == 4:
            peak = max(peak, tree_pss_mb())
        if i + 1 >= args.batches:
            break
    print(f"{args.dataset}: {len(dataset):,} frames, {args.batches} batches, {args.workers} workers: peak PSS of "
          f"the process tree {peak:,.0f} MB")


if __name__ == "__main__":
    main()
