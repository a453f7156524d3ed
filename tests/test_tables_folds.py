"""Tables from a run configured with fewer folds or variants than the protocol (``workflow.test_parts``,
the config's variants): they build, every title says which folds they hold, no cell gets a reproduction
verdict, and runs outside the configured folds are a clear error. The DAG passes its folds to the command."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml
from conftest import REPO
from dag import snakemake, workdir
from test_tables import CROSS, FLOOR, WITHIN, write_cross, write_run

from au_ttt.cli import main
from au_ttt.errors import InputError
from au_ttt.settings import load_settings
from au_ttt.tables import make_tables
from au_ttt.tables.collect import fold_scope


@pytest.fixture
def one_fold(tmp_path):
    """Test part 1 of each dataset, AU-TTT only; Table III's one row is Table I's BP4D run (as in the DAG when
    nothing is pretrained)."""
    t1 = [write_run(tmp_path / "t1", d, 1, "au_roi_ttt", WITHIN[d][0], FLOOR[d][0]) for d in ("bp4d", "disfa")]
    t2 = [write_cross(tmp_path / "t2", s, t, v) for (s, t), v in CROSS.items()]
    return {"t1": t1, "t2": t2, "t3": t1[:1], "out": tmp_path / "results"}


def test_fold_scope_words():
    assert fold_scope([1, 2, 3]) == "3-fold average"
    assert fold_scope([1]) == "test part 1 only (1 of 3 folds)"
    assert fold_scope([3, 1]) == "test parts 1, 3 only (2 of 3 folds)"


def test_one_fold_real_tables_say_so_and_give_no_verdicts(one_fold):
    settings = load_settings(REPO / "config/config.yaml")
    settings = dataclasses.replace(settings, tracking=dataclasses.replace(settings.tracking, enabled=False))
    make_tables("real", one_fold["t1"], one_fold["t2"], one_fold["t3"], one_fold["out"], settings=settings,
                parts=[1], ablation_variants=["au_roi_ttt"])
    tables = one_fold["out"] / "tables"
    t1, t3 = (tables / "table1.md").read_text(), (tables / "table3.md").read_text()
    report = (one_fold["out"] / "REPORT.md").read_text()
    for text in (t1, t3, (tables / "table1_per_au.md").read_text()):
        assert "test part 1 only (1 of 3 folds)" in text and "3-fold average" not in text
        assert "not the protocol's three folds" in text and "not a reproduction test" in text
    assert re.search(r"\| AU-TTT \(this run\) \| this run \| 60\.0 \[", t1)  # BP4D part 1's own mean, not a 3-fold one
    assert "| AU-TTT (paper) | - | 65.6 | 66.4 |" in t1  # the published rows stay, labelled as such
    rows = [line for line in t3.splitlines() if line.startswith("| au_roi_ttt") or line.startswith("| baseline")]
    assert len(rows) == 1 and rows[0].startswith("| au_roi_ttt")
    assert "Rows not run (the config's variants leave them out): baseline, original_ttt, msp, forward_ttt, " \
           "backward_ttt." in t3
    assert not (tables / "reproduction.csv").exists() and "Reproduction verdicts" not in report
    assert "**Reproduction:" not in report and "> **Test part 1 only (1 of 3 folds).**" in report
    assert "no cell gets a reproduction verdict" in report
    assert "mean over the folds this run trained — test part 1 only (1 of 3 folds) — of each fold's" in report


def test_configured_folds_are_enforced(one_fold, tmp_path):
    t1, t2, t3, out = one_fold["t1"], one_fold["t2"], one_fold["t3"], one_fold["out"]
    stray = write_run(tmp_path / "stray", "disfa", 2, "au_roi_ttt", 0.5)
    with pytest.raises(InputError, match=r"disfa au_roi_ttt has runs on test part\(s\) 2, outside --parts 1 .*"
                                         r"disfa-au_roi_ttt-test2"):
        make_tables("synthau", [*t1, stray], t2, t3, out, parts=[1], ablation_variants=["au_roi_ttt"])
    with pytest.raises(InputError, match=r"bp4d au_roi_ttt lacks test part\(s\) 2 \(--parts 1 2 asks for them\)"):
        make_tables("synthau", t1, t2, t3, out, parts=[1, 2], ablation_variants=["au_roi_ttt"])
    with pytest.raises(InputError, match=r"lacks test part\(s\) 2, 3 \(3-fold mean needs parts 1, 2, 3\)"):
        make_tables("synthau", t1, t2, t3, out)  # the default is the protocol
    with pytest.raises(InputError, match=r"--variants: \['nope'\] are not Table III rows"):
        make_tables("synthau", t1, t2, t3, out, parts=[1], ablation_variants=["nope"])
    with pytest.raises(InputError, match=r"variant\(s\) \['au_roi_ttt'\] .* not among the Table III rows asked for"):
        make_tables("synthau", t1, t2, t3, out, parts=[1], ablation_variants=["msp"])
    assert not out.exists()


def test_cli_builds_one_fold_synthau_tables(one_fold, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("tracking:\n  enabled: false\n")
    argv = ["tables", "--data", "synthau", "--config", str(cfg), "--out", str(one_fold["out"]), "--parts", "1",
            "--variants", "au_roi_ttt", "--table1", *map(str, one_fold["t1"]), "--table2", *map(str, one_fold["t2"]),
            "--table3", *map(str, one_fold["t3"])]
    assert main(argv) == 0
    t1 = (one_fold["out"] / "tables/table1.md").read_text()
    assert "SynthAU" in t1 and "test part 1 only" in t1 and "not a reproduction test" not in t1


def test_dag_passes_its_folds_and_variants_to_the_tables(tmp_path):
    """A one-fold, one-variant config: the dry run's tables command names exactly those."""
    cfg = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    cfg["workflow"].update(test_parts=[1], seeds=[0], baselines=[])
    cfg["variants"] = {cfg["workflow"]["full_variant"]: {}}
    src = tmp_path / "one-fold.yaml"
    src.write_text(yaml.safe_dump(cfg))
    result = snakemake(workdir(tmp_path / "work", src), "-n", "-p", "--cores", "2", "all")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    command = next(line for line in result.stdout.splitlines() if "au-ttt tables " in line)
    assert "--parts 1 --variants au_roi_ttt " in command, command
