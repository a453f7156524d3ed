#!/usr/bin/env python
"""Does a change move results? Run the DAG at two commits and compare every run's numbers.

  .venv/bin/python scripts/refactor_check.py --base 0a52f33 --head b71fec3 --work /tmp/refactor-check \
      --json docs/refactor-check/oneofeach.json

Each commit is exported (``git archive``) to ``<work>/<commit>``, runs ``snakemake all`` with its own copy of
``--config`` (default: the tiny CI DAG, ``.test/config/config.yaml``; ``config/config.yaml`` is the demo), and
then, for every run directory both commits made (``results/runs/**/metrics.json`` and the cross-domain
``results/cross/**/metrics.json``), the F1 values, floors, frame counts and best epochs are compared with
``==`` and the per-frame probabilities of ``predictions.parquet`` with ``numpy.array_equal``; the tables' CSVs
are compared as text. Run keys, timestamps and paths are not compared (the code digest is in the run key, so
it always differs).

A change that is *meant* to move float32 rounding (a faster scan, another kernel) cannot be bit-identical;
``--tolerance POINTS`` then judges it as another CPU would be judged (README, "How far your numbers may
differ"): every table's headline cells (Table I's dataset means, Table II's averages, Table III's Avg.) within
POINTS, and what does not depend on rounding exactly equal — frame counts, AU lists, all-positive floors,
row and column labels of Tables I-III. Per-AU and per-fold cells are reported (largest difference), not judged:
one fold of four test subjects moves further than its mean; so are the paired comparisons, whose verdicts
flip when an interval ends near 0 (each changed verdict is listed). Both runs' job seconds (the DAG's
``benchmark:`` files, wall and CPU per rule) are summed beside the DAG's wall time, so a speed change is seen
where it happens.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NUMBERS = ("f1", "f1_mean", "all_positive_f1_mean", "test_frames", "best", "best_epoch_on_test", "aus")
EXACT = ("all_positive_f1_mean", "test_frames", "aus")      # labels only: no rounding can move these
EXACT_COLUMNS = ("All-positive floor",)


def export(rev: str, work: Path) -> Path:
    """The commit's tree under ``work/<sha>`` with this checkout's venv linked in."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", rev], capture_output=True,
                         text=True, check=True).stdout.strip()
    tree = work / sha
    if not tree.is_dir():
        tmp = work / f".{sha}.tmp"
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        (tmp / ".venv").symlink_to(BIN.parent)
        tmp.rename(tree)
    return tree


def run_dag(tree: Path, config: str, cores: int) -> dict[str, float]:
    """``snakemake all`` of ``tree`` in ``tree/_run``; wall seconds."""
    run = tree / "_run"
    if (run / "results/tables/table1.csv").is_file():
        return json.loads((run / "wall.json").read_text())
    (run / "config").mkdir(parents=True, exist_ok=True)
    (run / "config/config.yaml").write_text((tree / config).read_text())
    env = {**os.environ, "PYTHONPATH": str(tree), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    start = time.time()
    with (run / "snakemake.log").open("w") as log:
        res = subprocess.run([str(BIN / "snakemake"), "-s", str(tree / "Snakefile"), "-d", str(run), "all",
                              "--cores", str(cores)], env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if res.returncode:
        sys.exit(f"{tree}: snakemake failed (exit {res.returncode}); see {run / 'snakemake.log'}")
    wall = {"wall_s": round(time.time() - start, 1)}
    (run / "wall.json").write_text(json.dumps(wall))
    return wall


def _numbers(path: Path) -> dict:
    record = json.loads(path.read_text())
    return {k: record[k] for k in NUMBERS if k in record}


def _probabilities(folder: Path):
    import numpy as np
    import pandas as pd

    file = folder / "predictions.parquet"
    if not file.is_file():
        return None
    frame = pd.read_parquet(file)
    cols = [c for c in frame.columns if c.startswith("prob_")]
    return np.asarray(frame[sorted(cols)], dtype=np.float64) if cols else None


def _records(root: Path) -> set[Path]:
    """Every run record a DAG wrote (fold runs and cross-domain evaluations), relative to its run folder."""
    return {p.relative_to(root) for top in ("runs", "cross") for p in (root / "results" / top).rglob("metrics.json")}


def compare(a: Path, b: Path) -> dict:
    """Every run both trees made: numbers and probabilities equal, or which differ."""
    import numpy as np

    both, only = sorted(_records(a) & _records(b)), sorted(_records(a) ^ _records(b))
    differ, probs_checked = [], 0
    for r in both:
        if _numbers(a / r) != _numbers(b / r):
            differ.append(str(r))
            continue
        pa, pb = _probabilities((a / r).parent), _probabilities((b / r).parent)
        if pa is not None and pb is not None:
            probs_checked += 1
            if pa.shape != pb.shape or not np.array_equal(pa, pb):
                differ.append(f"{r.parent}/predictions.parquet")
    tables = sorted(p.name for p in (a / "results/tables").glob("*.csv"))
    table_diff = [t for t in tables if not (b / "results/tables" / t).is_file()
                  or (a / "results/tables" / t).read_text() != (b / "results/tables" / t).read_text()]
    return {"runs_compared": len(both), "predictions_compared": probs_checked, "runs_differing": differ,
            "runs_in_one_only": [str(p) for p in only], "tables_compared": tables, "tables_differing": table_diff}


def _judged(table: str) -> bool:
    """Tables I-III are judged; the per-AU table and the paired comparisons (differences of judged cells and
    the verdicts drawn from their intervals, which flip when an interval ends near 0) are reported only."""
    return not table.endswith("_per_au.csv") and table != "comparisons.csv"


def _headline(table: str, column: str, columns: list[str]) -> bool:
    """A cell a judged table reports with its interval, not per AU: Table I's dataset means, Table II's
    direction averages, Table III's Avg."""
    return f"{column} lo" in columns and "AU" not in column and _judged(table)


def _table_drift(a: Path, b: Path, name: str) -> dict:
    """Largest headline and other numeric differences (points) between two renderings of one table."""
    import numpy as np
    import pandas as pd

    ta, tb = (pd.read_csv(root / "results/tables" / name) for root in (a, b))
    if list(ta.columns) != list(tb.columns) or ta.shape != tb.shape:
        return {"same_shape": False}
    out: dict = {"judged": _judged(name), "same_shape": True, "labels_equal": True, "exact_equal": True,
                 "headline_max": 0.0, "headline_cell": None, "other_max": 0.0, "labels_changed": []}
    for col in ta.columns:
        x, y = ta[col], tb[col]
        if not (pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y)):
            xs, ys = x.fillna("").astype(str), y.fillna("").astype(str)
            out["labels_equal"] &= bool(xs.equals(ys))
            out["labels_changed"] += [f"{col}, row {i + 1}: {xs.iloc[i]!r} → {ys.iloc[i]!r}"
                                      for i in np.flatnonzero((xs != ys).to_numpy())]
            continue
        diff = np.abs(x.to_numpy(float) - y.to_numpy(float))
        if col in EXACT_COLUMNS:
            out["exact_equal"] &= bool(np.array_equal(x.to_numpy(float), y.to_numpy(float), equal_nan=True))
        if not np.isfinite(diff).any():
            continue
        i = int(np.nanargmax(diff))
        key = "headline" if _headline(name, col, list(ta.columns)) else "other"
        if diff[i] > out[f"{key}_max"]:
            out[f"{key}_max"] = round(float(diff[i]), 3)
            if key == "headline":
                out["headline_cell"] = f"{col}, row {i + 1}: {x.iloc[i]:.2f} vs {y.iloc[i]:.2f}"
    return out


def drift(a: Path, b: Path, tolerance: float) -> dict:
    """A numerics change judged like another CPU: headline cells within ``tolerance`` points, labels exact."""
    exact_differ, run_max = [], (0.0, "")
    for r in sorted(_records(a) & _records(b)):
        na, nb = _numbers(a / r), _numbers(b / r)
        if any(na.get(k) != nb.get(k) for k in EXACT):
            exact_differ.append(str(r))
        if "f1_mean" in na and "f1_mean" in nb and abs(na["f1_mean"] - nb["f1_mean"]) * 100 > run_max[0]:
            run_max = (round(abs(na["f1_mean"] - nb["f1_mean"]) * 100, 3), str(r.parent))
    tables = {t.name: _table_drift(a, b, t.name) for t in sorted((a / "results/tables").glob("*.csv"))}
    ok = not exact_differ and all(t.get("same_shape") and t["labels_equal"] and t["exact_equal"]
                                  and t["headline_max"] <= tolerance for name, t in tables.items() if _judged(name))
    return {"tolerance_points": tolerance, "runs_exact_fields_differing": exact_differ,
            "run_f1_mean_max_points": {"points": run_max[0], "run": run_max[1]}, "tables": tables,
            "within_tolerance": ok}


def job_seconds(root: Path) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds per rule, summed over the DAG's ``benchmark:`` files."""
    import pandas as pd

    out: dict[str, dict[str, float]] = {}
    for tsv in sorted((root / "results/benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(root / "results/benchmarks").parts[0]
        row = pd.read_csv(tsv, sep="\t").iloc[-1]
        acc = out.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0})
        acc["jobs"] += 1
        acc["wall_s"] = round(acc["wall_s"] + float(row["s"]), 1)
        acc["cpu_s"] = round(acc["cpu_s"] + float(row.get("cpu_time", 0.0) or 0.0), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="commit before the refactor")
    parser.add_argument("--head", default="HEAD", help="commit after it")
    parser.add_argument("--config", default=".test/config/config.yaml", help="config path inside each commit")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder outside the repository")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the comparison here")
    parser.add_argument("--tolerance", type=float, default=0.0, metavar="POINTS",
                        help="0 (default): results must be bit-identical; > 0: a change meant to move float "
                             "rounding, judged like another CPU (headline table cells within POINTS, floors, "
                             "frame counts and labels exact); the README's cross-CPU figure is 3")
    args = parser.parse_args()
    work = args.work.resolve()
    if work.is_relative_to(REPO):
        sys.exit(f"--work {work} is inside the repository; choose a folder elsewhere (e.g. /tmp)")
    trees = [export(rev, work) for rev in (args.base, args.head)]
    walls = [run_dag(t, args.config, args.cores) for t in trees]
    result = {"base": trees[0].name, "head": trees[1].name, "config": args.config,
              "wall_s": {t.name: w["wall_s"] for t, w in zip(trees, walls, strict=True)},
              **compare(trees[0] / "_run", trees[1] / "_run")}
    result["identical"] = not (result["runs_differing"] or result["tables_differing"])
    result["job_seconds"] = {t.name: job_seconds(t / "_run") for t in trees}
    if args.tolerance > 0:
        result["drift"] = drift(trees[0] / "_run", trees[1] / "_run", args.tolerance)
    text = json.dumps(result, indent=2) + "\n"
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
