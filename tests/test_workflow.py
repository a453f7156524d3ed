"""The Snakemake DAG: lint, the paper's job list on format replicas, and a full run of the tiny CI config.

The full run also checks the two rerun promises: a second run has nothing to do, and changing one
training value reruns only the jobs that depend on it.
"""

import json
import re
import shutil
import zipfile

import pytest
import yaml
from conftest import REPO
from dag import job_blocks, job_counts, snakemake, workdir


def test_lint_is_clean(tmp_path):
    work = workdir(tmp_path, REPO / ".test/config/config.yaml")
    result = snakemake(work, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout, result.stdout


@pytest.mark.parametrize(("edit", "message"), [
    (lambda wf: wf.update(shard_subject=2), "config/config.yaml: unknown key 'workflow.shard_subject'; allowed keys "
                                            "here: ablation_dataset, baseline_weights, baselines, "
                                            "cross_domain_model_part,"),
    (lambda wf: wf["synthau"].update(subjects_per_part=100),
     "config/config.yaml: key 'workflow.synthau.subjects_per_part' has value 100; allowed: an integer in 1..14"),
], ids=["typo", "synthau-size"])
def test_bad_workflow_values_stop_the_dag_with_the_plans_message(tmp_path, edit, message):
    """The DAG and `au-ttt plan` check the workflow section with one function (au_ttt/workflow_config.py): the
    same one-line message, before any job (a subjects_per_part of 100 was a ValueError traceback at parse time)."""
    cfg = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    edit(cfg["workflow"])
    work = workdir(tmp_path, REPO / ".test/config/config.yaml")
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(work, "-n", "all", timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"WorkflowError in file \"{REPO / 'workflow/rules/common.smk'}\"" in out, out[-3000:]
    assert f"\n{message}" in out and "Traceback" not in out


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
    work = workdir(tmp_path / "work", REPO / "config/config.yaml")
    (work / "paper.yaml").write_text(yaml.safe_dump(paper))
    # the target goes before --resources: Snakemake's --resources takes every following name=value word
    result = snakemake(work, "all", "-n", "--cores", "8", "--resources", "gpu=4",
                        "--configfile", str(work / "paper.yaml"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # 3 seeds x [3 folds x 2 datasets (Table I) + 7 variants (the paper's 6 + our attention control) x 3 folds
    # (Table III) + the baselines' folds: timm ViT and ResNet on both datasets, the attention control on DISFA (its
    # BP4D folds are Table III's)] trainings; cross-domain: both directions of AU-TTT and of the three trained
    # baselines per seed, and of the probe (a closed-form fit per fold: 6 probe jobs); one pretraining on the
    # ImageNet root, no SynthAU generation
    assert counts["train"] == 3 * (3 * 2 + 7 * 3 + 2 * 3 * 2 + 3)
    assert counts["cross_domain"] == 3 * 2 + 3 * 3 * 2 + 2 and counts["probe"] == 6
    assert counts["pretrain"] == 1 and counts["tables"] == 1
    assert "synthau" not in counts and "pretrain_digits" not in counts
    # one landmarks/crops/heatmaps job per subject shard (41 BP4D + 27 DISFA subjects), one video per
    # decoding job, a pre-flight check and a gather per dataset
    assert counts["landmarks"] == counts["crops"] == counts["heatmaps"] == 41 + 27
    assert counts["disfa_frames"] == 27 and counts["data_check"] == counts["gather"] == counts["frame_index"] == 2
    # every job carries its scheduler request (threads, memory, run time; GPUs where they apply)
    blocks = job_blocks(result.stdout)
    assert set(counts) - {"all"} <= {rule for rule, _ in blocks}
    for rule, text in blocks:
        if rule == "all":
            continue
        assert re.search(r"mem_mb=\d+", text) and re.search(r"runtime=\d+", text), (rule, text)
        if rule in ("train", "pretrain", "cross_domain"):
            assert re.search(r"gpu=[1-9]", text) and re.search(r"threads: \d+", text), (rule, text)
        if rule == "pretrain":  # ImageNet pretraining: 4 DDP processes on the job's 4 GPUs
            assert "gpu=4" in text and "au-ttt pretrain" in text and "--nproc 4" in text, text


@pytest.mark.slow
def test_tiny_dag_runs_end_to_end_and_reruns_minimally(tmp_path):
    work = workdir(tmp_path, REPO / ".test/config/config.yaml")
    run = snakemake(work, "--cores", "2", "all", timeout=2400)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    for name in ("tables/table1.md", "tables/table2.md", "tables/table3.md", "tables/table1.tex",
                 "tables/table3.csv", "figures/figure1.png", "REPORT.md"):
        assert (work / "results" / name).is_file(), name
    assert "synthetic" in (work / "results/tables/table1.md").read_text().lower()
    table1 = (work / "results/tables/table1.md").read_text()
    assert "same protocol (this pipeline)" in table1 and "ViT, plain fine-tune" in table1, table1
    assert "HOG + logistic regression (probe)" in table1, table1
    metrics = json.loads((work / "results/metrics.json").read_text())
    assert {"au_ttt", "timm_vit", "hog_lr"} <= set(metrics["table1"]["bp4d"]), metrics["table1"]["bp4d"]

    report = snakemake(work, "--report", str(work / "report.zip"))  # the Snakemake report of the finished run
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    with zipfile.ZipFile(work / "report.zip") as z:
        names = "\n".join(z.namelist())
    for name in ("table1.html", "table2.html", "table3.html", "comparisons.html", "figure1.png", "curves.png",
                 "benchmark.png"):
        assert name in names, (name, names[:2000])

    again = snakemake(work, "-n", "--cores", "2", "all")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout, again.stdout[-2000:]

    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    cfg["train"]["weight_decay"] = 0.01                       # one training value
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    changed = snakemake(work, "-n", "--cores", "2", "all")
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    counts = job_counts(changed.stdout)
    # every trained run (27 AU-TTT rows + 6 timm ViT) and their cross-domain evaluations; the probe's fit does not
    # read the train section, so neither it nor its cross-domain evaluations rerun
    assert counts.get("train") == 33 and counts.get("cross_domain") == 4 and counts.get("tables") == 1, counts
    assert not {"synthau", "frame_index", "landmarks", "crops", "heatmaps", "pretrain", "probe"} & set(counts), counts


def test_dataset_roots_are_quoted_never_executed(tmp_path):
    """Real-data roots with a space and with `$(touch …)`: the data steps run on the first, and the second's
    shell syntax is a folder name, never a command (every value in a shell line is quoted)."""
    from au_ttt.cli import main

    marker = tmp_path / "INJECTED"
    synth = tmp_path / "synth"
    assert main(["synth", "--out", str(synth), "--subjects-per-part", "1", "--bp4d-tasks", "1", "--bp4d-frames", "3",
                 "--disfa-frames", "3", "--no-progress"]) == 0
    for name in ("with space", f"x$(touch {marker})y"):
        root = tmp_path / name / "BP4D"
        shutil.copytree(synth / "BP4D", root)
        cfg = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
        # real data shards the 41 published subjects: one shard keeps this test to a handful of jobs
        cfg["workflow"].update(data="real", datasets=["bp4d"], pretrain=False, data_check="off", shard_subjects=41,
                               roots={"bp4d": str(root), "disfa": None, "imagenet": None})
        cfg["landmarks"]["backend"] = "provided"
        work = workdir(tmp_path / f"work-{len(name)}", REPO / ".test/config/config.yaml")
        (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
        result = snakemake(work, "data_products", "--cores", "2", timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert (work / "results/data/bp4d/heatmaps").is_dir()
    assert not marker.exists()


def test_a_copy_that_fails_the_check_stops_the_dag_and_keeps_the_report(tmp_path):
    """Real data with `data_check: published` on a copy far smaller than the protocol's: the check fails,
    nothing downstream runs, and the whole JSON report survives beside the log (Snakemake deletes the
    outputs of a failed job, so the rule writes the report there first)."""
    import json

    from au_ttt.cli import main

    synth = tmp_path / "synth"
    assert main(["synth", "--out", str(synth), "--subjects-per-part", "2", "--bp4d-tasks", "1",
                 "--bp4d-frames", "2", "--disfa-frames", "2", "--no-progress"]) == 0
    cfg = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    cfg["workflow"].update(data="real", datasets=["bp4d"], pretrain=False, data_check="published",
                           roots={"bp4d": str(synth / "BP4D"), "disfa": None, "imagenet": None})
    work = workdir(tmp_path / "work", REPO / ".test/config/config.yaml")
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(work, "data_products", "--cores", "2", timeout=600)
    assert result.returncode != 0
    assert "Error in rule data_check" in result.stdout + result.stderr
    assert not (work / "results/data/bp4d/check.json").exists()
    assert not (work / "results/data/bp4d/index.parquet").exists()
    log = (work / "results/logs/data_check/bp4d.log").read_text()
    assert "DOES NOT MATCH" in log and "results/logs/data_check/bp4d.json" in log, log
    report = json.loads((work / "results/logs/data_check/bp4d.json").read_text())
    assert report["errors"] >= 1 and report["findings"], report


@pytest.mark.slow
def test_real_data_path_on_the_published_subject_lists(tmp_path):
    """Scale rehearsal in miniature: SynthAU with all 41 BP4D / 27 DISFA subjects read through the real-data
    path (pre-flight check, one DISFA decoding job per video, subject shards, gather)."""
    import pandas as pd

    from au_ttt.cli import main

    synth = tmp_path / "synth"
    assert main(["synth", "--out", str(synth), "--subjects-per-part", "14", "--bp4d-tasks", "1",
                 "--bp4d-frames", "2", "--disfa-frames", "2", "--no-progress"]) == 0
    cfg = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    cfg["workflow"].update(data="real", pretrain=False, data_check="structure", shard_subjects=14,
                           roots={"bp4d": str(synth / "BP4D"), "disfa": str(synth / "DISFA"), "imagenet": None})
    cfg["landmarks"]["backend"] = "provided"
    work = workdir(tmp_path / "work", REPO / ".test/config/config.yaml")
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(work, "data_products", "--cores", "2", timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout + result.stderr)
    assert counts["data_check"] == 2 and counts["disfa_frames"] == 27 and counts["gather"] == 2
    assert counts["landmarks"] == counts["crops"] == counts["heatmaps"] == 3 + 2   # ⌈41/14⌉ + ⌈27/14⌉ shards
    for dataset, subjects, frames in (("bp4d", 41, 82), ("disfa", 27, 54)):
        index = pd.read_parquet(work / f"results/data/{dataset}/index.parquet")
        assert index["subject"].nunique() == subjects and len(index) == frames
        report = yaml.safe_load((work / f"results/data/{dataset}/crops/crops.report.json").read_text())
        assert report["written"] == frames, report
