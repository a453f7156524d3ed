"""The Snakemake DAG: lint, the paper's job list on format replicas, and a full run of the tiny CI config.

The full run also checks the two rerun promises: a second run has nothing to do, and changing one
training value reruns only the jobs that depend on it.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

BIN = Path(sys.executable).parent


def _snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def _job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table (rule name → count) from a dry run."""
    counts, in_table = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m:
                counts[m.group(1)] = int(m.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


def _workdir(tmp_path: Path, config: Path) -> Path:
    (tmp_path / "config").mkdir(parents=True)
    shutil.copy(config, tmp_path / "config" / "config.yaml")
    return tmp_path


def test_lint_is_clean(tmp_path):
    work = _workdir(tmp_path, REPO / ".test/config/config.yaml")
    result = _snakemake(work, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout, result.stdout


def test_paper_config_lists_the_full_reproduction(tmp_path):
    """config/paper.yaml with dataset roots that are small format replicas: the complete job list."""
    from replicas import write_bp4d_csv, write_disfa_labels, write_disfa_video

    bp4d, disfa, imagenet = tmp_path / "BP4D", tmp_path / "DISFA", tmp_path / "imagenet"
    write_bp4d_csv(bp4d, "F001", "T1", [10, 11], {1: [1, 0]})
    write_disfa_labels(disfa, "SN001", {1: [0, 3]})
    write_disfa_video(disfa, "SN001", 2)
    for split in ("train", "val"):
        (imagenet / split / "n01440764").mkdir(parents=True)
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    paper["workflow"]["roots"] = {"bp4d": str(bp4d), "disfa": str(disfa), "imagenet": str(imagenet)}
    work = _workdir(tmp_path / "work", REPO / "config/config.yaml")
    (work / "paper.yaml").write_text(yaml.safe_dump(paper))
    # the target goes before --resources: Snakemake's --resources takes every following name=value word
    result = _snakemake(work, "all", "-n", "--cores", "8", "--resources", "gpu=4",
                        "--configfile", str(work / "paper.yaml"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = _job_counts(result.stdout)
    # 3 folds x 2 datasets (Table I) + 7 variants (the paper's 6 + our attention control) x 3 folds (Table III)
    # trainings, 2 cross-domain directions, one pretraining on the ImageNet root, no SynthAU generation
    assert counts["train"] == 3 * 2 + 7 * 3
    assert counts["cross_domain"] == 2 and counts["pretrain"] == 1 and counts["tables"] == 1
    assert "synthau" not in counts and "pretrain_digits" not in counts
    assert counts["landmarks"] == counts["crops"] == counts["heatmaps"] == counts["frame_index"] == 2


@pytest.mark.slow
def test_tiny_dag_runs_end_to_end_and_reruns_minimally(tmp_path):
    work = _workdir(tmp_path, REPO / ".test/config/config.yaml")
    run = _snakemake(work, "--cores", "2", "all", timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    for name in ("tables/table1.md", "tables/table2.md", "tables/table3.md", "tables/table1.tex",
                 "tables/table3.csv", "figures/figure1.png", "REPORT.md"):
        assert (work / "results" / name).is_file(), name
    assert "synthetic" in (work / "results/tables/table1.md").read_text().lower()

    again = _snakemake(work, "-n", "--cores", "2", "all")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout, again.stdout[-2000:]

    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    cfg["train"]["weight_decay"] = 0.01                       # one training value
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    changed = _snakemake(work, "-n", "--cores", "2", "all")
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    counts = _job_counts(changed.stdout)
    assert counts.get("train") == 27 and counts.get("cross_domain") == 2 and counts.get("tables") == 1
    assert not {"synthau", "frame_index", "landmarks", "crops", "heatmaps", "pretrain"} & set(counts), counts
