#!/usr/bin/env python
"""Scale rehearsal: the real-data preprocessing path on every published subject, measured, then projected.

  .venv/bin/python scripts/scale_rehearsal.py [--work /tmp/au-ttt-rehearsal] [--frames 3] [--cores 2]
                                              [--out docs/scaling.md]

1. ``au-ttt synth`` writes SynthAU with all 41 BP4D and 27 DISFA subjects (BP4D tasks T1–T8, ``--frames``
   frames per task; DISFA ``8 × --frames`` frames per video) in the distributed formats;
2. ``snakemake data_products`` runs on it as **real** data (``workflow.data: real``): the pre-flight check,
   one DISFA decoding job per video, one dlib landmarks / crops / heatmaps job per subject, the gathers.
   Snakemake's ``benchmark:`` files record every job's wall and CPU seconds;
3. the CPU seconds become per-frame costs (a job's fixed start-up cost is taken from the heatmaps jobs,
   whose per-frame work is negligible) written as an ``au-ttt plan --timings`` file;
4. :mod:`au_ttt.planning` projects the full-size run (146,847 BP4D + 130,814 DISFA frames, ImageNet-1K
   pretraining, 24 trainings) on 1 core, on one 8-core machine with 4 GPUs, and on Slurm nodes of that
   kind, and the result goes to ``--out``.

SynthAU frames are smaller than real ones (BP4D-format 240×320 vs 1040×1392): per-frame costs are stated at
the size they were measured and the plan scales them by pixel count. GPU rates are the plan's (a CUDA
``au-ttt bench`` file in results/bench/, else the GPU cost model on AU-TTT's profiled op lists, on an
A100 80GB SXM), stated with their source in the output, and the cost model's validation follows the tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SYNTH_PIXELS = {"bp4d": 240 * 320, "disfa": 256 * 192}   # au_ttt.data.synth.render.DOMAINS frame sizes


def run(cmd: list[str], cwd: Path, log: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    with log.open("w") as fh:
        res = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if res.returncode:
        sys.exit(f"{' '.join(cmd)} failed (exit {res.returncode}); see {log}")


def jobs(bench: Path, rule: str, dataset: str | None = None) -> list[dict[str, float]]:
    """One row per job of ``rule`` (optionally one dataset): wall ``s`` and ``cpu_time`` seconds."""
    pattern = f"{dataset}*.tsv" if dataset else "*.tsv"
    out = []
    for path in sorted((bench / rule).glob(pattern)):
        with path.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        out.append({"s": float(row["s"]), "cpu": float(row["cpu_time"])})
    if not out:
        sys.exit(f"no benchmark files for rule {rule!r} ({dataset or 'all'}) under {bench}")
    return out


def measure(work: Path, frames: dict[str, int]) -> dict:
    """Per-frame CPU seconds per stage from the benchmark files, with the start-up cost taken out.

    Returns the per-frame costs at SynthAU's frame size (a table for the report) and the timings the plan
    will use: the measured job start-up and the stages whose cost does not grow with the frame size (the
    frame index). Stages that decode or scan images are not extrapolated from these small frames — their
    fixed per-frame part (decode set-up, the 68-point fit, Python) dominates at 240×320, so scaling by pixels
    would overstate a 1040×1392 frame several times; the plan keeps its costs measured at the real size.
    """
    bench = work / "results/benchmarks"
    startup = statistics.median(j["cpu"] for j in jobs(bench, "heatmaps"))

    def per_frame(rule: str, datasets: tuple[str, ...]) -> tuple[float, float]:
        rows = [r for d in datasets for r in jobs(bench, rule, d)]
        total = sum(j["cpu"] for j in rows)
        work_s = max(0.0, total - startup * len(rows))
        return work_s / sum(frames[d] for d in datasets), work_s / total if total else 0.0

    src = "scale rehearsal (scripts/scale_rehearsal.py): SynthAU through the real-data path, CPU seconds"
    measured = {
        "landmarks.dlib (BP4D-format)": (*per_frame("landmarks", ("bp4d",)), SYNTH_PIXELS["bp4d"]),
        "crops (BP4D-format)": (*per_frame("crops", ("bp4d",)), SYNTH_PIXELS["bp4d"]),
        "heatmaps": (*per_frame("heatmaps", ("bp4d", "disfa")), None),
        "disfa_frames": (*per_frame("disfa_frames", ("disfa",)), SYNTH_PIXELS["disfa"]),
        "index": (*per_frame("frame_index", ("bp4d", "disfa")), None),
    }
    timings = {"job_startup": {"seconds": round(startup, 3), "source": f"{src}: median of a heatmaps job"},
               "index": {"seconds": measured["index"][0], "source": f"{src} per frame"}}
    walls = {rule: sum(j["s"] for j in jobs(bench, rule)) for rule in
             ("data_check", "disfa_frames", "frame_index", "landmarks", "crops", "heatmaps", "gather")}
    return {"source": src, "stages": timings, "per_frame": measured, "startup": startup, "job_seconds": walls}


def project(config: dict, timings: Path, settings: list[tuple[str, int, int, int]]) -> list[str]:
    """Markdown tables of the full-size plan for each (label, cores, gpus, nodes)."""
    from au_ttt.planning import (
        RateBook,
        Resources,
        cost_model,
        discover_bench,
        estimate,
        pretrain_batch,
        render_gpu_model,
        render_table,
        scan_path,
        train_batch,
    )

    os.chdir(REPO)  # sources are named relative to the repository, as `au-ttt plan` run there names them
    rates = RateBook()
    for path in discover_bench("results/bench"):
        rates = rates.with_bench(path)
    rates = rates.with_timings(timings.relative_to(REPO) if timings.is_relative_to(REPO) else timings)
    out = []
    for label, cores, gpus, nodes in settings:
        resources = Resources(cores=cores, gpus=gpus, nodes=nodes)
        out += [f"### {label}", "", render_table(estimate(config, resources, rates), resources, rates.files), ""]
    batches = {"train": train_batch(config), "infer": train_batch(config), "pretrain": pretrain_batch(config, gpus=4)}
    path, why = scan_path(config)
    out += ["### Where the GPU rates come from", "", render_gpu_model(cost_model(), rates.gpu, path, batches, why), ""]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/au-ttt-rehearsal"), help="scratch folder")
    parser.add_argument("--frames", type=int, default=3, help="BP4D frames per task (DISFA: 8x per video)")
    parser.add_argument("--cores", type=int, default=2, help="--cores for the rehearsal DAG")
    parser.add_argument("--out", type=Path, default=REPO / "docs/scaling.md")
    parser.add_argument("--reuse", action="store_true", help="reuse a finished rehearsal in --work (no rerun)")
    args = parser.parse_args()

    work = args.work.resolve()
    stamp = work / "rehearsal.json"   # written when the DAG finished: --reuse only re-measures and re-projects
    if args.reuse and stamp.is_file():
        meta = json.loads(stamp.read_text())
    else:
        if work.exists():
            sys.exit(f"{work} exists; remove it, choose another --work, or pass --reuse after a finished run")
        (work / "config").mkdir(parents=True)
        meta = {"load": os.getloadavg()[0], "cores": args.cores, "frames": args.frames}
        started = time.time()
        run([str(BIN / "au-ttt"), "synth", "--out", str(work / "synth"), "--subjects-per-part", "14",
             "--bp4d-tasks", "8", "--bp4d-frames", str(args.frames), "--disfa-frames", str(8 * args.frames),
             "--no-progress"], work, work / "synth.log")
        cfg = yaml.safe_load((REPO / "config/paper.yaml").read_text())
        cfg["workflow"].update(data_check="structure", pretrain=False,
                               roots={"bp4d": str(work / "synth/BP4D"), "disfa": str(work / "synth/DISFA"),
                                      "imagenet": None})
        cfg["landmarks"].update(backend="dlib")
        (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
        run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "data_products", "--cores", str(args.cores)],
            work, work / "snakemake.log")
        meta["seconds"] = time.time() - started
        stamp.write_text(json.dumps(meta))
    load, elapsed, cores, per_task = meta["load"], meta["seconds"], meta["cores"], meta["frames"]

    import pandas as pd

    frames = {d: len(pd.read_parquet(work / f"results/data/{d}/index.parquet")) for d in ("bp4d", "disfa")}
    measured = measure(work, frames)
    timings = args.out.resolve().with_name("scaling-timings.json")   # `au-ttt plan --timings` reads it too
    timings.write_text(json.dumps({"source": measured["source"], "stages": measured["stages"]}, indent=2))

    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    rows = [f"| {k} | {sec * 1000:.2f} ms | {100 * share:.0f} % | {px or '-'} |"
            for k, (sec, share, px) in measured["per_frame"].items()]
    bench = work / "results/benchmarks"
    n_videos, n_shards = len(jobs(bench, "disfa_frames")), len(jobs(bench, "landmarks"))
    host = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    lines = [
        "# Scaling: what the paper-size run costs, projected from measured stage costs",
        "",
        f"Made by `scripts/scale_rehearsal.py` on {time.strftime('%Y-%m-%d')} ({host}, load {load:.1f} when "
        "it started). Rerun it to refresh the numbers.",
        "",
        "## The rehearsal",
        "",
        f"SynthAU with every published subject (41 BP4D, 27 DISFA; BP4D tasks T1–T8, {per_task} frames per task; "
        f"{8 * per_task} frames per DISFA video) went through the **real-data** path of the DAG "
        f"(`workflow.data: real`) with `--cores {cores}`: the pre-flight check, {n_videos} DISFA decoding "
        f"jobs, one dlib landmarks / crops / heatmaps job per subject ({n_shards} shards), and the gathers: "
        f"{frames['bp4d']:,} BP4D-format and {frames['disfa']:,} DISFA-format frames, {elapsed:.0f} s in all.",
        "",
        f"Every job starts with a fixed cost: **{measured['startup']:.2f} CPU-s** (the median of the heatmaps "
        "jobs, whose per-frame work is negligible: importing pandas/OpenCV, reading the index, writing outputs "
        "atomically). Measured CPU seconds per frame with that start-up taken out, and the share of the stage's "
        "CPU time that is per-frame work:",
        "",
        "| stage | per frame | per-frame share of CPU | frame pixels |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        "At SynthAU's small frames the per-frame share is small and the per-frame costs carry fixed parts (image "
        "decode set-up, the 68-point fit, Python): dlib costs about 35 ms on a 240×320 frame but about 130 ms on a "
        "1040×1392 BP4D-size photo (measured directly), 3.7× for 19× the pixels. So the projection below takes "
        "from this rehearsal what it measures well — the job start-up and the frame index's cost per frame — and "
        "keeps the image stages' costs measured at real frame size (their sources are listed under each table).",
        "",
        "Wall seconds summed over the rehearsal's jobs, per rule: "
        + ", ".join(f"{k} {v:.0f}" for k, v in measured["job_seconds"].items()) + ".",
        "",
        "## The paper-size run",
        "",
        "`au-ttt plan` with these timings (the same numbers `au-ttt plan --config config/paper.yaml --timings "
        "docs/scaling-timings.json` prints). Training and pretraining run on GPUs; their rates and sources are in each "
        "table's notes: a model of the GPU step (per-op roofline and kernel-launch time on AU-TTT's profiled op "
        "lists), not a measurement; its validation against published timm figures follows the tables. With "
        "`pretrain.source: timm_checkpoint` the pretraining row costs nothing.",
        "",
        *project(paper, timings, [("1 CPU core, 1 GPU", 1, 1, 1), ("one machine: 8 cores, 4 GPUs", 8, 4, 1),
                                  ("4 Slurm nodes of 8 cores and 4 GPUs", 8, 4, 4)]),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"rehearsal: {elapsed:.0f} s; wrote {args.out} and {timings}")


if __name__ == "__main__":
    main()
