"""Cost plan before compute: per stage of the DAG, the work, the throughput assumed and the estimated hours.

  au-ttt plan --config config/paper.yaml [--cores N] [--gpus N] [--nodes N] [--bench FILE] [--timings FILE]

Work comes from the config (SynthAU sizes, or the published BP4D/DISFA frame counts and ImageNet-1K);
costs per item from `au-ttt bench` JSON files (default: the newest in results/bench/) and a timings file when
given, else built-in defaults, each printed with its source. Rules: au_ttt/planning/estimate.py.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "estimate the hours of every pipeline stage for a config on given cores, GPUs and nodes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"), help="project config file")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPU cores per node")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs per node (default: the GPUs visible here)")
    parser.add_argument("--nodes", type=int, default=1, help="machines (e.g. Slurm nodes) jobs spread over")
    parser.add_argument("--bench", type=Path, nargs="*", default=None,
                        help="`au-ttt bench` JSON files (default: the newest CPU and CUDA ones in results/bench/; "
                             "pass no file to use only the built-in rates)")
    parser.add_argument("--timings", type=Path, default=None,
                        help="JSON of measured seconds per item per stage (format: au_ttt/planning/rates.py)")
    parser.add_argument("--json", type=Path, default=None, help="also write the plan as JSON here")


def run(args: argparse.Namespace) -> int:
    from au_ttt.fileio import atomic_write_json
    from au_ttt.planning import (
        RateBook,
        Resources,
        discover_bench,
        estimate,
        plan_dict,
        pretraining_gpu_days,
        render_table,
    )
    from au_ttt.resources import visible_gpus
    from au_ttt.workflow_config import check_config_file

    resources = Resources(cores=args.cores, gpus=visible_gpus() if args.gpus is None else args.gpus, nodes=args.nodes)
    config = check_config_file(args.config)  # every section, the DAG's workflow schema, the SynthAU sizes
    rates = RateBook()
    for path in discover_bench() if args.bench is None else args.bench:
        rates = rates.with_bench(path)
    if args.timings is not None:
        rates = rates.with_timings(args.timings)
    source = str(args.config)
    stages = estimate(config, resources, rates, source)
    days = pretraining_gpu_days(config, rates, source)
    print(f"Cost plan for {args.config}\n")
    print(render_table(stages, resources, rates.files, days))
    if args.json is not None:
        atomic_write_json(args.json, plan_dict(stages, resources, rates.files, days))
        print(f"\nplan: {args.json}")
    return 0
