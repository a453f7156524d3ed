"""Cost plan before compute: per stage of the DAG, the work, the throughput assumed and the estimated hours.

  au-ttt plan --config config/paper.yaml [--cores N] [--gpus N] [--nodes N] [--bench FILE] [--timings FILE]

Work comes from the config (SynthAU sizes, or the published BP4D/DISFA frame counts and ImageNet-1K);
costs per item from `au-ttt bench` JSON files (default: the newest in results/bench/) and a timings file when
given, else built-in defaults, each printed with its source. Rules: au_ttt/planning/estimate.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

HELP = "estimate the hours of every pipeline stage for a config on given cores, GPUs and nodes"


def _gpus_here() -> int:
    """GPUs visible here (CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`), without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


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


def _config(path: Path) -> dict:
    """The config as a dict, after the package's strict check of every section (unknown keys, bad values)."""
    from au_ttt.config import load_yaml
    from au_ttt.settings import load_settings

    load_settings(path)
    return load_yaml(path)


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

    resources = Resources(cores=args.cores, gpus=_gpus_here() if args.gpus is None else args.gpus, nodes=args.nodes)
    config = _config(args.config)
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
