"""Cost plan before compute: per stage of the DAG, the work, the throughput assumed and the estimated hours.

  au-ttt plan --config config/paper.yaml [--cores N] [--gpus N] [--nodes N] [--bench FILE] [--timings FILE]

Work comes from the config (SynthAU sizes, or the published BP4D/DISFA frame counts and ImageNet-1K);
costs per item from `au-ttt bench` JSON files (default: the newest in results/bench/) and a timings file when
given, else built-in defaults, each printed with its source. GPU rates without a measured CUDA file come
from the GPU cost model on AU-TTT's profiled op lists (--gpu-type picks the GPU); its calibration and
validation against published timm figures are printed below the table. Rules: au_ttt/planning/stages.py,
au_ttt/planning/gpu_model.py.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from au_ttt.planning.gpu_model import CostModel

HELP = "estimate the hours of every pipeline stage for a config on given cores, GPUs and nodes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"), help="project config file")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPU cores per node")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs per node (default: the GPUs visible here)")
    parser.add_argument("--nodes", type=int, default=1, help="machines (e.g. Slurm nodes) jobs spread over")
    parser.add_argument("--bench", type=Path, nargs="*", default=None,
                        help="`au-ttt bench` JSON files (default: the newest CPU and CUDA ones in results/bench/; "
                             "pass no file to use only the built-in rates)")
    parser.add_argument("--gpu-type", default="A100-80GB-SXM",
                        help="GPU the cost model prices (A100-40GB-SXM, A100-80GB-SXM, H100-SXM, RTX-3090, RTX-4090)")
    parser.add_argument("--timings", type=Path, default=None,
                        help="JSON of measured seconds per item per stage (format: au_ttt/planning/rates.py)")
    parser.add_argument("--json", type=Path, default=None, help="also write the plan as JSON here")


def run(args: argparse.Namespace) -> int:
    from au_ttt.fileio import atomic_write_json
    from au_ttt.planning import (
        RateBook,
        Resources,
        cost_model,
        discover_bench,
        estimate,
        gpu_model_dict,
        model_geometry,
        plan_dict,
        pretrain_batch,
        pretraining_gpu_days,
        render_gpu_model,
        render_table,
        scan_path,
        train_batch,
    )
    from au_ttt.planning.rates import VIT_S16
    from au_ttt.resources import visible_gpus
    from au_ttt.workflow_config import check_config_file

    resources = Resources(cores=args.cores, gpus=visible_gpus() if args.gpus is None else args.gpus, nodes=args.nodes)
    config = check_config_file(args.config)  # every section, the DAG's workflow schema, the SynthAU sizes
    source = str(args.config)
    path, why = scan_path(config)
    files = discover_bench() if args.bench is None else args.bench

    def book(scan: str) -> RateBook:
        rates = RateBook.for_gpu(args.gpu_type, scan)
        for file in files:
            rates = rates.with_bench(file)
        return rates.with_timings(args.timings) if args.timings is not None else rates

    rates = book(path)
    stages = estimate(config, resources, rates, source)
    gpus = max(resources.gpus, 1)
    days = pretraining_gpu_days(config, rates, source, gpus)
    print(f"Cost plan for {args.config}\n")
    print(render_table(stages, resources, rates.files, days))
    model = cost_model()
    batches = {"train": train_batch(config, source), "infer": train_batch(config, source),
               "pretrain": pretrain_batch(config, source, gpus)}
    geometry = model_geometry(config, source)
    other = None if geometry == VIT_S16 else geometry.label
    print("\n" + render_gpu_model(model, args.gpu_type, path, batches, why, other))
    others = _other_paths(model, path, lambda p: estimate(config, resources, book(p), source),
                          lambda p: pretraining_gpu_days(config, book(p), source, gpus))
    if args.json is not None:
        plan = plan_dict(stages, resources, rates.files, days)
        plan["gpu_model"] = gpu_model_dict(model, args.gpu_type, path, batches) | {"other_paths": others}
        atomic_write_json(args.json, plan)
        print(f"\nplan: {args.json}")
    return 0


def _other_paths(model: CostModel, path: str, plan_for: Callable[[str], list],
                 pretrain_days_for: Callable[[str], float]) -> dict[str, dict[str, float]]:
    """GPU-hours and pretraining GPU-days of the plan on each other profiled AU-TTT path (printed, returned)."""
    others = {}
    for alt_path in (p for p in model.paths() if p != path):
        alt = plan_for(alt_path)
        others[alt_path] = {"gpu_h": sum(e.device_h for e in alt if e.device == "gpu"),
                            "imagenet_pretraining_gpu_days": pretrain_days_for(alt_path)}
        gpu = (f"{others[alt_path]['gpu_h']:,.1f} GPU-hours in this plan" if any(e.device == "gpu" for e in alt)
               else "no stage of this plan runs on a GPU (--gpus 0)")
        print(f"With the {alt_path} op profiles instead: {gpu}, "
              f"ImageNet-1K pretraining {others[alt_path]['imagenet_pretraining_gpu_days']:,.1f} GPU-days.")
    if not others:
        print("No other AU-TTT path is profiled; another path's profiles (`au-ttt bench --profile-ops au_ttt "
              "--ttt-impl NAME`) are priced here beside this one once they exist.")
    return others
