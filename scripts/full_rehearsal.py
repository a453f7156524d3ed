#!/usr/bin/env python
"""Full-count rehearsal: the real-data DAG on a complete-count replica of BP4D and DISFA, measured per stage.

  PATH=.venv/bin:$PATH nice -n 10 .venv/bin/python scripts/full_rehearsal.py --work /work/rehearsal-data/full
  .venv/bin/python scripts/full_rehearsal.py --work /tmp/rehearsal-984 --scale small     # the 984-frame one

1. ``au_ttt.data.synth.replica.write_replica`` writes the replica: all 41 BP4D subjects × T1–T8 with the
   published segments (146,847 frames), all 27 DISFA videos (130,814 frames), label and landmark files
   (``--scale small``: 3 frames per segment and 24 per video, 984 + 648 frames, the size of the first
   rehearsal);
2. the DAG (``snakemake all``, ``workflow.data: real``) runs with config/paper.yaml's data settings — crop
   256, input 224, the paper's heatmaps, batch 64, 8 loader workers — through the pre-flight check in its
   default mode (``published``; ``structure`` for the small scale), DISFA decoding, frame index, landmarks
   (the ``provided`` backend, reading the replica's shipped landmark files: dlib over 277 k frames does not
   fit a 2-core machine, its cost per frame is measured separately), crops, heatmaps, gathers, one epoch of
   a deliberately tiny network (one block of width 32, the baseline's switches) per dataset (fold testing on
   part 1), cross-domain evaluation on the whole target, tables and REPORT.md, MLflow logging. Every job
   writes a Snakemake ``benchmark:`` file;
3. ``snakemake -n`` times the DAG build before and after the run (277 k files on disk);
4. ``scripts/rehearsal_report.py`` turns the benchmark files, output sizes and the loader benchmark into
   ``<out>/rehearsal-<scale>.json`` and the Markdown report.

The work folder must be outside the repository; ``--reuse`` skips the steps whose output exists (a finished
replica or DAG is never redone, so a crash late in the run costs only what is left).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCALES = {"full": {"bp4d_frames": None, "disfa_frames": None, "check": "published"},
          "small": {"bp4d_frames": 3, "disfa_frames": 24, "check": "structure"}}
# The deliberately tiny model: data settings stay the paper's (224 px input, patch 16, 14×14 heatmaps), the
# network is one block of width 32 with the Table III baseline's switches (a linear token mixer, no MSP, no AU
# RoI branch), so model compute does not hide the data path's cost. With the full model's switches the same
# width-32 block cost about 60 CPU-ms per image in the training process here (its many small ops): one DISFA
# epoch would have taken hours on 2 cores and measured the scan, not the loader.
TINY_MODEL = {"embed_dim": 32, "depth": 1, "num_heads": 2, "mlp_ratio": 2.0, "drop_path_rate": 0.0}
TINY_SWITCHES = {"mixer": "linear", "bidirectional": False, "msp": False, "au_roi": False}


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_logged(cmd: list[str], cwd: Path, log: Path) -> dict[str, float]:
    """Run ``cmd`` with its output in ``log``; wall and CPU seconds (the command and its children)."""
    cpu0, start = _children_cpu(), time.time()
    with log.open("w") as fh:
        res = subprocess.run(cmd, cwd=cwd, env=_env(), stdout=fh, stderr=subprocess.STDOUT, check=False)
    if res.returncode:
        sys.exit(f"{' '.join(cmd)} failed (exit {res.returncode}); see {log}")
    return {"wall_s": round(time.time() - start, 2), "cpu_s": round(_children_cpu() - cpu0, 2)}


def rehearsal_config(work: Path, scale: str, cores: int) -> dict:
    """config/paper.yaml with the replica's roots, one fold and seed, the full model only (no baseline rows), one
    epoch, a tiny network."""
    cfg = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    wf = cfg["workflow"]
    wf.update(roots={"bp4d": str(work / "replica/BP4D"), "disfa": str(work / "replica/DISFA"), "imagenet": None},
              pretrain=False, test_parts=[1], data_check=SCALES[scale]["check"], seeds=[0], baselines=[],
              resources={"train": {"threads": cores, "gpus": 1, "mem_mb": 32000, "runtime": 720},
                         "cross_domain": {"threads": cores, "gpus": 1, "mem_mb": 16000, "runtime": 240}})
    cfg["variants"] = {wf["full_variant"]: dict(TINY_SWITCHES)}   # the tables' marks say so
    cfg["model"].update(TINY_MODEL)
    cfg["landmarks"]["backend"] = "provided"
    cfg["train"].update(epochs=1, warmup_epochs=0.1)
    cfg["tracking"].update(experiment=f"au-ttt-rehearsal-{scale}")
    return cfg


def dry_run(work: Path, log: Path) -> dict[str, float]:
    """``snakemake -n all``: how long parsing the workflow and building the DAG takes in this state."""
    return run_logged([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-n", "all", "--cores", "2",
                       "--quiet", "rules"], work, log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder outside the repository")
    parser.add_argument("--scale", choices=tuple(SCALES), default="full")
    parser.add_argument("--cores", type=int, default=2, help="--cores of the DAG")
    parser.add_argument("--reuse", action="store_true", help="keep finished steps in --work")
    parser.add_argument("--out", type=Path, default=REPO / "docs/rehearsal", help="report folder")
    args = parser.parse_args()
    work = args.work.resolve()
    if work.is_relative_to(REPO):
        sys.exit(f"--work {work} is inside the repository; put the rehearsal's data elsewhere (e.g. /tmp)")
    if work.exists() and not args.reuse:
        sys.exit(f"{work} exists; remove it, choose another --work, or pass --reuse to continue it")
    (work / "logs").mkdir(parents=True, exist_ok=True)
    meta_path = work / "rehearsal.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {
        "scale": args.scale, "cores": args.cores, "host": f"{platform.machine()}, {os.cpu_count()} cores",
        "started": time.strftime("%Y-%m-%d %H:%M"), "load_at_start": os.getloadavg(),
        "command": " ".join(["scripts/full_rehearsal.py", *sys.argv[1:]]), "steps": {}}

    def save() -> None:
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")

    scale = SCALES[meta["scale"]]
    if "replica" not in meta["steps"]:
        code = (f"from au_ttt.data.synth.replica import write_replica; write_replica({str(work / 'replica')!r}, "
                f"bp4d_frames={scale['bp4d_frames']}, disfa_frames={scale['disfa_frames']}, workers={args.cores})")
        meta["steps"]["replica"] = run_logged([sys.executable, "-c", code], work, work / "logs/replica.log")
        save()
    (work / "config").mkdir(exist_ok=True)
    (work / "config/config.yaml").write_text(yaml.safe_dump(rehearsal_config(work, meta["scale"], args.cores)))
    if "dag_before" not in meta["steps"]:
        meta["steps"]["dag_before"] = dry_run(work, work / "logs/dag_before.log")
        save()
    if "dag" not in meta["steps"]:
        # mtime triggers only: a run continued with --reuse after a fix to the code makes what is missing
        # instead of redoing every job (each rule's params carry the package's digest)
        meta["steps"]["dag"] = run_logged([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "all", "--cores",
                                           str(args.cores), "--rerun-triggers", "mtime", "--rerun-incomplete"], work,
                                          work / "logs/snakemake.log")
        meta["load_at_end"] = os.getloadavg()
        save()
    meta["steps"]["dag_after"] = dry_run(work, work / "logs/dag_after.log")
    save()
    run_logged([sys.executable, str(REPO / "scripts/rehearsal_report.py"), "--work", str(work), "--out",
                str(args.out)], work, work / "logs/report.log")
    print(f"rehearsal {meta['scale']}: DAG {meta['steps']['dag']['wall_s']:.0f} s; report in {args.out}")


if __name__ == "__main__":
    main()
