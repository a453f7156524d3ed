"""Same-protocol baseline rows and several seeds in the tables (fabricated runs whose F1 is known exactly).

Known answers: a baseline's fold means are its row's number, with an interval; it is compared with AU-TTT
on the same subjects (Table I per dataset, Table II per direction); two seeds of a fold are averaged and
their spread shown; metrics.json holds every cell for DVC; a part missing a seed is refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from test_tables import CROSS, FLOOR, WITHIN, ci, write_cross, write_run

from au_ttt.errors import InputError
from au_ttt.tables import make_tables
from au_ttt.tables.published import VARIANTS

VIT_MODEL = {"arch": "vit", "img_size": 64, "patch_size": 16, "embed_dim": 64, "depth": 2}


def _seeded(run: Path, seed: int, model: dict | None = None) -> Path:
    (run / "run.json").write_text(json.dumps({"train": {"seed": seed}, "model": model or {}, "pretrained": None}))
    return run


@pytest.fixture
def tables(tmp_path):
    # AU-TTT, two seeds: seed 1 scores 2 points more on every fold → BP4D 64.0, DISFA 56.0
    t1 = [_seeded(write_run(tmp_path / f"t1s{s}", d, p, "au_roi_ttt", WITHIN[d][p - 1] + 0.02 * s, FLOOR[d][p - 1]), s)
          for s in (0, 1) for d in ("bp4d", "disfa") for p in (1, 2, 3)]
    t2 = [write_cross(tmp_path / "t2", s, t, v) for (s, t), v in CROSS.items()]
    t3 = [write_run(tmp_path / "t3", "bp4d", p, v, 0.50 + 0.02 * (p - 1) + k / 100)
          for k, v in enumerate(VARIANTS) for p in (1, 2, 3)]
    vit = [_seeded(write_run(tmp_path / "vit", d, p, "timm_vit", 0.40), 0, VIT_MODEL)
           for d in ("bp4d", "disfa") for p in (1, 2, 3)]
    probe = [write_run(tmp_path / "probe", d, p, "hog_lr", 0.45) for d in ("bp4d", "disfa") for p in (1, 2, 3)]
    for run in probe:
        (run / "probe.json").write_text(json.dumps({"pretrained": None}))
    vit_cross = []
    for (s, t), values in CROSS.items():
        out = write_cross(tmp_path / "vitx", s, t, tuple(v - 0.1 for v in values))
        data = json.loads((out / "metrics.json").read_text())
        data["variant"] = "timm_vit"
        (out / "metrics.json").write_text(json.dumps(data))
        vit_cross.append(out)
    return {"t1": t1, "t2": t2, "t3": t3, "baselines": vit + probe, "cross": vit_cross, "out": tmp_path / "results"}


def test_baseline_rows_seeds_and_dvc_metrics(tables):
    out = tables["out"]
    make_tables("synthau", tables["t1"], tables["t2"], tables["t3"], out, baseline_runs=tables["baselines"],
                baseline_cross=tables["cross"])
    t1 = (out / "tables/table1.md").read_text()
    same = r"\| same protocol \(this pipeline\) \| "
    sd = r" \(seed sd 1\.4\)"  # two seeds 2 points apart: std (ddof 1) = 2 / sqrt(2)
    assert re.search(same + rf"AU-TTT \(this run\) \| {ci('64.0')}{sd} \| {ci('56.0')}{sd} \|", t1)
    assert re.search(same + r"ViT, plain fine-tune \(timm VisionTransformer 64 px, patch 16, width 64, depth 2; "
                     rf"CLS → AU logits\) \| {ci('40.0')} \| {ci('40.0')} \|", t1)
    assert re.search(same + rf"HOG \+ logistic regression \(probe\) \| {ci('45.0')} \| {ci('45.0')} \|", t1)
    assert re.search(r"\| reference \(labels only\) \| All-positive floor", t1) and "published" not in t1
    t2 = (out / "tables/table2.md").read_text()
    assert re.search(same + r"ViT, plain fine-tune .*\| " + ci("30.0") + r" \|", t2)  # B→D Avg. 40.0 − 10
    comparisons = pd.read_csv(out / "tables/comparisons.csv")
    mine = comparisons[comparisons["Comparison"].str.startswith("AU-TTT (this run) − ")]
    pairs = {(r.Table, r.Dataset, r.Comparison.split(" − ", 1)[1]) for r in mine.itertuples()}
    assert {("Table I", "BP4D", "HOG + logistic regression (probe)"), ("Table I", "DISFA",
            "HOG + logistic regression (probe)"), ("Table II", "BP4D→DISFA", VIT_LABEL),
            ("Table II", "DISFA→BP4D", VIT_LABEL)} <= pairs
    probe_bp4d = mine[(mine["Dataset"] == "BP4D") & mine["Comparison"].str.contains("probe")].iloc[0]
    assert probe_bp4d["Difference (points)"] == pytest.approx(19.0)          # 64.0 − 45.0
    assert probe_bp4d["Finding"] == "distinguishable from noise"
    assert "a closed-form fit" in probe_bp4d["Note"]                          # the probe is not trained
    report = (out / "REPORT.md").read_text()
    assert "AU-TTT (this run) − HOG + logistic regression (probe): +19.0 points" in report
    assert "| 1 (seed 1) |" in report                                          # every fold run of every seed
    metrics = json.loads((out / "metrics.json").read_text())
    cell = metrics["table1"]["bp4d"]["hog_lr"]
    assert cell["f1"] == pytest.approx(45.0) and cell["ci95_lo"] < 45.0 < cell["ci95_hi"]
    assert metrics["table1"]["bp4d"]["au_ttt"]["f1"] == pytest.approx(64.0)
    assert metrics["table2"]["bp4d_to_disfa"]["timm_vit"]["f1"] == pytest.approx(30.0)
    assert (out / "figures/curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "ViT, plain fine-tune" in (out / "tables/table1.html").read_text()


VIT_LABEL = ("ViT, plain fine-tune (timm VisionTransformer 64 px, patch 16, width 64, depth 2; CLS → AU logits)")


def test_a_fold_missing_a_seed_is_refused(tables):
    t1 = [r for r in tables["t1"] if not (r.parent.name == "t1s1" and r.name == "disfa-au_roi_ttt-test3")]
    with pytest.raises(InputError, match=r"disfa au_roi_ttt has different seeds per test part.*part 3: \[0\]"):
        make_tables("synthau", t1, tables["t2"], tables["t3"], tables["out"])
    dup = _seeded(write_run(tables["out"].parent / "dup", "bp4d", 1, "au_roi_ttt", 0.5), 1)
    with pytest.raises(InputError, match="bp4d test part 1 is given 2 times with seed 1"):
        make_tables("synthau", [*tables["t1"], dup], tables["t2"], tables["t3"], tables["out"])
