"""Our attention control in Table III: an extra row after the paper's six, labelled as ours in md, tex, csv and
REPORT.md, never beside a paper number."""

import re

import pandas as pd
import pytest
from conftest import REPO
from test_tables import CROSS, FLOOR, WITHIN, ci, write_cross, write_run

from au_ttt.settings import load_settings
from au_ttt.tables import make_tables
from au_ttt.tables.collect import CONTROLS
from au_ttt.tables.published import VARIANTS


def _runs(tmp_path, with_control: bool):
    t1 = [write_run(tmp_path / "t1", d, p, "au_roi_ttt", WITHIN[d][p - 1], FLOOR[d][p - 1])
          for d in ("bp4d", "disfa") for p in (1, 2, 3)]
    t2 = [write_cross(tmp_path / "t2", s, t, v) for (s, t), v in CROSS.items()]
    variants = [*VARIANTS, "attention_control"] if with_control else list(VARIANTS)
    t3 = [write_run(tmp_path / "t3", "bp4d", p, v, 0.50 + 0.02 * (p - 1) + k / 100)
          for k, v in enumerate(variants) for p in (1, 2, 3)]
    return t1, t2, t3


def test_attention_control_row_is_labelled_ours_everywhere(tmp_path):
    settings = load_settings(REPO / "config/config.yaml")
    for data in ("synthau", "real"):
        out = tmp_path / data
        t1, t2, t3 = _runs(tmp_path / f"runs-{data}", with_control=True)
        make_tables(data, t1, t2, t3, out, settings=None if data == "real" else settings)
        md = (out / "tables/table3.md").read_text()
        label = CONTROLS["attention_control"]
        row = next(line for line in md.splitlines() if line.startswith("| attention_control"))
        assert label in row and "our control, not in the paper" in row
        assert row.split("|")[2:8] == [" ✓ ", "  ", " ✓ ", "  ", "  ", " ✓ "]   # baseline, MSP, AU RoI
        if data == "real":                                                    # no paper value, no Δ
            assert re.search(rf"\| – \| {ci('58.0')} \| – \| 2\.0 \|$", row)
        else:
            assert re.search(rf"\| {ci('58.0')} \| 2\.0 \|", row)           # 3-fold mean 52 + 6, std 2
        assert "our control, not in the paper" in (out / "tables/table3.tex").read_text()
        csv = pd.read_csv(out / "tables/table3.csv")
        control = csv[csv["Variant"].str.startswith("attention_control")]
        assert list(control["source"]) == ["our control (not in the paper)"]
        assert (csv["source"] == "paper row").sum() == 6
        if data == "real":
            assert control["Avg. (paper)"].isna().all() and control["Δ (this run − paper)"].isna().all()
        report = (out / "REPORT.md").read_text()
        assert f"attention_control ({label})" in report


def test_table3_without_control_runs_has_only_the_paper_rows(tmp_path):
    t1, t2, t3 = _runs(tmp_path / "runs", with_control=False)
    make_tables("synthau", t1, t2, t3, tmp_path / "out")
    assert "attention_control" not in (tmp_path / "out/tables/table3.md").read_text()


def test_control_is_compared_paired_in_tables_i_and_iii(tmp_path):
    """Data-driven comparisons: the control against the row above it (Table III) and AU-TTT against it (Table I),
    with the different initialisation (run.json) named beside the difference."""
    import json

    t1, t2, t3 = _runs(tmp_path / "runs", with_control=True)
    for run in t1:
        (run / "run.json").write_text(json.dumps({"pretrained": "results/pretrain/backbone.safetensors"}))
    for run in t3:
        (run / "run.json").write_text(json.dumps({"pretrained": None}))
    make_tables("synthau", t1, t2, t3, tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out/tables/comparisons.csv").set_index("Comparison")
    above = csv.loc["attention_control − au_roi_ttt"]
    assert above["Against"] == "row above" and above["Difference (points)"] == pytest.approx(1.0)  # 58 − 57
    table1 = csv.loc["AU-TTT (this run) − attention_control (our control)"]
    assert table1["Table"] == "Table I" and table1["Dataset"] == "BP4D"
    assert table1["Difference (points)"] == pytest.approx(63.0 - 58.0)
    assert "pretrained backbone" in table1["Note"] and "scratch" in table1["Note"]
    assert isinstance(above["Note"], float)  # both from scratch: no note (empty CSV cell)
    report = (tmp_path / "out/REPORT.md").read_text()
    assert "Table I (BP4D), AU-TTT (this run) − attention_control (our control): +5.0 points [" in report
