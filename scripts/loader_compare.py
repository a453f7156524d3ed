#!/usr/bin/env python
"""Loader cost per image, before and after a change, on one crop store: CPU-seconds per image (= 1 / images
per core) with 0, 1 and 2 workers, measured the same way for both code versions.

  .venv/bin/python scripts/loader_compare.py --work /work/rehearsal-data/full --before /tmp/au-ttt-before \\
      [--batches 5 45] [--workers 0 1 2] --out /work/rehearsal-data/full/loader-compare.json

``--before`` is a copy of the package's older code (``git archive <commit> au_ttt | tar -x -C DIR``). Each
version runs ``au-ttt loader-bench`` as a subprocess twice per worker count, with few and with many timed
batches; the difference of the two runs' CPU time (the command and its loader workers, from the kernel's
accounting of reaped children) divided by the difference of their images is the steady-state cost of one
image: start-up (index, dataset, worker forks) cancels out, and a shared machine's load changes wall time,
not CPU time. Wall images/s of the longer run are kept for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench(code: Path, work: Path, workers: int, batches: int, batch: int, extra: list[str]) -> tuple[float, dict]:
    """(CPU seconds of one `au-ttt loader-bench` run, its JSON) with the package imported from ``code``."""
    data = work / "results/data/bp4d"
    out = work / f".loader-{os.getpid()}.json"
    args = ["loader-bench", "--config", str(work / "results/config/resolved.yaml"), "--index",
            str(data / "index.parquet"), "--crops", str(data / "crops"), "--heatmaps", str(data / "heatmaps"),
            "--workers", str(workers), "--batches", str(batches), "--batch-size", str(batch), "--out", str(out),
            *extra]
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    before = _cpu()
    subprocess.run([sys.executable, "-c", f"from au_ttt.cli import main; raise SystemExit(main({args!r}))"],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    used = _cpu() - before
    result = json.loads(out.read_text())
    out.unlink()
    return used, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="a finished rehearsal (crop store, config)")
    parser.add_argument("--before", type=Path, required=True, help="folder holding the older au_ttt package")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, nargs=2, default=[5, 45], metavar=("FEW", "MANY"))
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (config/paper.yaml: 64)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    variants = [("before: float work in the workers (PIL decode)", args.before, []),
                ("after, CPU training: float work in the workers (OpenCV decode)", REPO, []),
                ("after, CUDA training: uint8 batches, float work on the GPU", REPO, ["--device-photometric"])]
    few, many = args.batches
    rows = []
    for label, code, extra in variants:
        for w in args.workers:
            cpu_few, _ = bench(code, args.work, w, few, args.batch_size, extra)
            cpu_many, res = bench(code, args.work, w, many, args.batch_size, extra)
            images = (many - few) * args.batch_size
            per_image = (cpu_many - cpu_few) / images
            rows.append({"variant": label, "workers": w, "cpu_ms_per_image": round(1000 * per_image, 3),
                         "images_per_core_s": round(1 / per_image, 1) if per_image > 0 else None,
                         "wall_images_per_s": res["results"][0]["images_per_s"]})
            print(json.dumps(rows[-1]), flush=True)
    summary = {"batch_size": args.batch_size, "batches": args.batches, "load_at_end": os.getloadavg(),
               "measured": time.strftime("%Y-%m-%d %H:%M"), "method": __doc__.split("\n\n")[1], "rows": rows}
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
