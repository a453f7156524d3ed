"""scripts/refactor_check.py's tolerance mode: a numerics change judged like another CPU (headline table cells
within the tolerance; floors, frame counts, AU lists and labels exact) and the per-rule job seconds."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TABLES = REPO / "docs/demo-results/tables"


@pytest.fixture(scope="module")
def rc():
    spec = importlib.util.spec_from_file_location("refactor_check", REPO / "scripts/refactor_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(root: Path, f1_mean: float = 0.5, frames: int = 144) -> Path:
    """A results tree: the reference demo's tables and one fold's metrics.json."""
    shutil.copytree(TABLES, root / "results/tables")
    run = root / "results/runs/bp4d/seed0/test1"
    run.mkdir(parents=True)
    record = {"f1": {"AU1": f1_mean}, "f1_mean": f1_mean, "all_positive_f1_mean": 0.4, "test_frames": frames,
              "aus": [1]}
    (run / "metrics.json").write_text(json.dumps(record))
    return root


def _edit(root: Path, table: str, row: int, column: str, delta: float) -> None:
    path = root / "results/tables" / table
    frame = pd.read_csv(path)
    frame.loc[row, column] = frame.loc[row, column] + delta
    frame.to_csv(path, index=False)


def test_identical_trees_are_within_any_tolerance(rc, tmp_path):
    out = rc.drift(_tree(tmp_path / "a"), _tree(tmp_path / "b"), 3.0)
    assert out["within_tolerance"]
    assert {t["headline_max"] for t in out["tables"].values()} == {0.0}
    assert set(out["tables"]) >= {"table1.csv", "table2.csv", "table3.csv"}


def test_headline_cells_judged_per_au_and_fold_cells_only_reported(rc, tmp_path):
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b", f1_mean=0.52)
    _edit(b, "table3.csv", 1, "Avg.", 2.5)          # a headline cell: within 3 points
    _edit(b, "table3.csv", 0, "test1", 7.0)         # one fold: reported, not judged
    _edit(b, "table1_per_au.csv", 0, "BP4D", 9.0)   # per AU: reported, not judged
    out = rc.drift(a, b, 3.0)
    assert out["within_tolerance"], out
    t3 = out["tables"]["table3.csv"]
    assert t3["headline_max"] == pytest.approx(2.5, abs=1e-3) and "Avg., row 2" in t3["headline_cell"]
    assert t3["other_max"] == pytest.approx(7.0, abs=1e-3)
    assert out["tables"]["table1_per_au.csv"]["headline_max"] == 0.0
    assert out["run_f1_mean_max_points"]["points"] == pytest.approx(2.0, abs=1e-6)
    _edit(b, "table1.csv", 0, "BP4D", 3.5)          # Table I's BP4D mean beyond 3 points
    out = rc.drift(a, b, 3.0)
    assert not out["within_tolerance"] and out["tables"]["table1.csv"]["headline_max"] == pytest.approx(3.5, abs=1e-3)


def test_floors_frame_counts_and_labels_must_match_exactly(rc, tmp_path):
    a = _tree(tmp_path / "a")
    b = _tree(tmp_path / "b")
    _edit(b, "table3.csv", 0, "All-positive floor", 0.01)
    out = rc.drift(a, b, 3.0)
    assert not out["within_tolerance"] and not out["tables"]["table3.csv"]["exact_equal"]

    c = _tree(tmp_path / "c", frames=143)
    out = rc.drift(a, c, 3.0)
    assert not out["within_tolerance"]
    assert out["runs_exact_fields_differing"] == ["results/runs/bp4d/seed0/test1/metrics.json"]

    d = _tree(tmp_path / "d")
    frame = pd.read_csv(d / "results/tables/table1.csv")
    frame.loc[0, "Method"] = "something else"
    frame.to_csv(d / "results/tables/table1.csv", index=False)
    out = rc.drift(a, d, 3.0)
    assert not out["within_tolerance"] and not out["tables"]["table1.csv"]["labels_equal"]


def test_job_seconds_sum_benchmark_files_per_rule(rc, tmp_path):
    bench = tmp_path / "results/benchmarks"
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for name, s, cpu in (("train/a.tsv", 10.0, 18.5), ("train/b.tsv", 5.5, 9.0), ("crops/x.tsv", 1.0, 0.5)):
        (bench / name).parent.mkdir(parents=True, exist_ok=True)
        (bench / name).write_text(header + f"{s}\t0:00:{int(s):02d}\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    assert rc.job_seconds(tmp_path) == {"crops": {"jobs": 1, "wall_s": 1.0, "cpu_s": 0.5},
                                        "train": {"jobs": 2, "wall_s": 15.5, "cpu_s": 27.5}}


def test_a_flipped_comparison_verdict_is_listed_not_judged(rc, tmp_path):
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    frame = pd.read_csv(b / "results/tables/comparisons.csv")
    before = frame.loc[0, "Finding"]
    frame.loc[0, "Finding"] = "not distinguishable (interval contains 0)"
    frame.loc[0, "Difference (points)"] += 4.0
    frame.to_csv(b / "results/tables/comparisons.csv", index=False)
    out = rc.drift(a, b, 3.0)
    comp = out["tables"]["comparisons.csv"]
    assert out["within_tolerance"] and not comp["judged"] and comp["other_max"] == pytest.approx(4.0, abs=1e-3)
    assert comp["labels_changed"] == [f"Finding, row 1: {before!r} → 'not distinguishable (interval contains 0)'"]
