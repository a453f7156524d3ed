#!/usr/bin/env python
"""Why does the demo's AU-TTT score below a HOG + logistic-regression probe, and what closes the gap?

A small, recorded experiment (README "What `make demo` produces"; results in docs/probe-gap.md): on the
demo's own SynthAU BP4D data products (results/data/bp4d from `snakemake data_products`), train AU-TTT on
the three folds under a few demo-size settings, fit the probe on the same folds (`au-ttt probe`), and score
every fold with the tables' subject-level bootstrap (mean F1 over AUs, 3-fold mean, 95 % interval, the
paired difference AU-TTT − probe). CPU seconds of every job are measured (getrusage of the child), since
the shared machine makes wall time meaningless.

    python scripts/probe_gap.py --out results/probe-gap --jobs 2 [--settings demo p8_16]
    python scripts/probe_gap.py --settings p8_16 --demo-runs results/runs/bp4d/scratch/au_roi_ttt/seed0  # after a demo

Each setting is a set of config overrides (SETTINGS below); a patch size other than 16 also needs the heatmap
cache at that grid, which is rebuilt here from the same crops (`au-ttt heatmaps --target-size`).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "results" / "data" / "bp4d"
# name -> (what it changes, overrides as dotted keys)
SETTINGS: dict[str, tuple[str, dict[str, object]]] = {
    "demo": ("the demo before this experiment: 64 px, patch 16 (4x4 tokens), width 64, depth 2, 32 epochs", {}),
    "p8_16": ("patch 8 (8x8 tokens), 16 epochs: the same CPU time as the demo",
              {"model.patch_size": 8, "heatmaps.patch_size": 8, "heatmaps.target_size": 8, "train.epochs": 16}),
    "p8_32": ("patch 8 (8x8 tokens), 32 epochs",
              {"model.patch_size": 8, "heatmaps.patch_size": 8, "heatmaps.target_size": 8}),
    "ep64": ("patch 16, 64 epochs", {"train.epochs": 64}),
    "lr1e3": ("patch 16, learning rate 1e-3", {"train.lr": 0.001}),
}
PROBES = {"probe": "HOG (8 px cells) + logistic regression: `au-ttt probe`, the Table I row",
          "probe_cell16": "HOG with 16 px cells (the models' patch grid) + logistic regression (`--cell 16`)"}


def _config(name: str, out: Path) -> Path:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    cfg["tracking"]["enabled"] = False
    for key, value in SETTINGS[name][1].items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = out / name / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _run(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` (one thread), return its CPU seconds (user + system)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({log}): {' '.join(cmd)}")
    return usage.ru_utime + usage.ru_stime


def _heatmaps(name: str, cfg: Path, out: Path) -> Path:
    target = SETTINGS[name][1].get("heatmaps.target_size")
    if target is None:
        return DATA / "heatmaps"
    dest = out / name / "heatmaps"
    if not dest.exists():
        _run([sys.executable, "-m", "au_ttt.cli", "heatmaps", "--config", str(cfg), "--index",
              str(DATA / "index.parquet"), "--crops", str(DATA / "crops"), "--out", str(dest)], out / name / "hm.log")
    return dest


def _train(name: str, cfg: Path, heatmaps: Path, part: int, out: Path) -> tuple[str, int, float]:
    run = out / name / f"test{part}"
    if (run / "metrics.json").is_file():
        return name, part, json.loads((run / "cpu.json").read_text())["cpu_s"]
    cpu = _run([sys.executable, "-m", "au_ttt.cli", "train", "--config", str(cfg), "--dataset", "bp4d",
                "--test-part", str(part), "--index", str(DATA / "index.parquet"), "--crops", str(DATA / "crops"),
                "--heatmaps", str(heatmaps), "--pretrained", "none", "--out", str(run), "--threads", "1",
                "--device", "cpu", "--no-progress"], out / name / f"test{part}.log")
    (run / "cpu.json").write_text(json.dumps({"cpu_s": cpu}))
    return name, part, cpu


def _probe(name: str, part: int, out: Path) -> tuple[str, int, float]:
    run = out / name / f"test{part}"
    if (run / "metrics.json").is_file():
        return name, part, json.loads((run / "cpu.json").read_text())["cpu_s"]
    (out / name).mkdir(parents=True, exist_ok=True)
    cfg, cell = _config("demo", out), "16" if name.endswith("16") else "8"
    cpu = _run([sys.executable, "-m", "au_ttt.cli", "probe", "--config", str(cfg), "--dataset", "bp4d",
                "--test-part", str(part), "--index", str(DATA / "index.parquet"), "--crops", str(DATA / "crops"),
                "--heatmaps", str(DATA / "heatmaps"), "--out", str(run), "--cell", cell],
               out / name / f"test{part}.log")
    (run / "cpu.json").write_text(json.dumps({"cpu_s": cpu}))
    return name, part, cpu


def adopt_dag_runs(out: Path, runs: Path, benchmarks: Path) -> None:
    """The "demo" setting is the DAG's own Table III full model (from scratch, seed 0): link its folds here, with
    their CPU seconds from Snakemake's benchmark files, instead of training them again."""
    import csv

    for part in (1, 2, 3):
        dest = out / "demo" / f"test{part}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            continue
        dest.symlink_to((runs / f"test{part}").resolve())
        with open(benchmarks / f"bp4d-scratch-au_roi_ttt-seed0-test{part}.tsv") as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        (out / "demo" / f"cpu-test{part}.json").write_text(json.dumps({"cpu_s": float(row["cpu_time"])}))


def _cpu(out: Path, name: str, part: int) -> float:
    for path in (out / name / f"test{part}" / "cpu.json", out / name / f"cpu-test{part}.json"):
        if path.is_file():
            return json.loads(path.read_text())["cpu_s"]
    raise SystemExit(f"no CPU record for {name} test{part}")


def summarise(out: Path, names: list[str]) -> dict:
    """Per setting: 3-fold mean F1 with its interval, the paired difference to the probe, CPU seconds."""
    from au_ttt.tables.collect import group_within, read_run
    from au_ttt.tables.intervals import Resampler, cell, difference
    from au_ttt.tables.uncertainty import _row_replicates

    res = Resampler()

    def group(name: str):
        return group_within([read_run(out / name / f"test{p}") for p in (1, 2, 3)])["bp4d"]

    rows = {}
    probe_reps = _row_replicates(group("probe"), res)
    for name in [*PROBES, *names]:
        if not all((out / name / f"test{p}" / "metrics.json").is_file() for p in (1, 2, 3)):
            continue  # a setting whose three folds did not all run is not summarised
        g = group(name)
        reps = _row_replicates(g, res)
        iv = cell(reps)
        cpu = sum(_cpu(out, name, p) for p in (1, 2, 3))
        row = {"what": SETTINGS[name][0] if name in SETTINGS else PROBES[name],
               "folds": [round(v, 1) for v in g.folds], "floor": round(g.floor, 1), "f1": round(iv.point, 1),
               "ci95": [round(iv.lo, 1), round(iv.hi, 1)], "cpu_s_3_folds": round(cpu, 1)}
        if name != "probe":
            d = difference(reps, probe_reps)
            row["minus_probe"] = {"points": round(d.point, 1), "ci95": [round(d.lo, 1), round(d.hi, 1)]}
        rows[name] = row
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "results" / "probe-gap")
    ap.add_argument("--settings", nargs="+", default=["demo", "p8_16", "p8_32"], choices=list(SETTINGS))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--demo-runs", type=Path, help="take the 'demo' setting from these DAG runs (test1..3), e.g. "
                    "results/runs/bp4d/scratch/au_roi_ttt/seed0, with CPU seconds from results/benchmarks/train")
    args = ap.parse_args()
    if not (DATA / "index.parquet").is_file():
        raise SystemExit(f"{DATA}: run `snakemake --cores 2 data_products` first")
    if args.demo_runs:
        adopt_dag_runs(args.out, args.demo_runs, REPO / "results" / "benchmarks" / "train")
        args.settings = [n for n in args.settings if n != "demo"]
    configs = {n: _config(n, args.out) for n in args.settings}
    heatmaps = {n: _heatmaps(n, configs[n], args.out) for n in args.settings}
    with ThreadPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(_probe, name, p, args.out) for name in PROBES for p in (1, 2, 3)]
        jobs += [pool.submit(_train, n, configs[n], heatmaps[n], p, args.out) for n in args.settings for p in (1, 2, 3)]
        for j in jobs:
            name, part, cpu = j.result()
            print(f"{name} test{part}: {cpu:.0f} CPU-s", flush=True)
    result = summarise(args.out, (["demo"] if args.demo_runs else []) + args.settings)
    (args.out / "probe-gap.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
