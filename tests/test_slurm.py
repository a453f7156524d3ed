"""The DAG through a real Slurm: a one-node cluster with 4 fake GPUs brought up by scripts/slurm-up.sh.

`make test` runs a small slice (the landmarks → crops → heatmaps → one GPU training chain: every job through
sbatch, the GPU job given a GPU by Slurm's gres) and checks its result equals a local run's. `make test-slurm`
also runs the whole tiny DAG through Slurm and compares every table with a local run (marker `slurm_full`).
Needs root to install and start the daemons; skipped (with the reason) where that is impossible.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO
from dag import job_counts, snakemake, workdir

# the workflow's `localrules`: bookkeeping that runs on the submit host
LOCAL_RULES = {"synthau", "frame_index", "pretrain_digits", "tables", "all"}


def _slurm_is_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    res = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, check=False)
    return res.returncode == 0 and ("idle" in res.stdout or "mix" in res.stdout)


@pytest.fixture(scope="module")
def slurm():
    """A running one-node Slurm; started (and stopped afterwards) by this fixture when none runs."""
    started = False
    if not _slurm_is_up():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("no Slurm running, and bringing one up needs root and apt-get (scripts/slurm-up.sh)")
        res = subprocess.run([str(REPO / "scripts/slurm-up.sh")], capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        started = True
    yield
    if started:
        subprocess.run([str(REPO / "scripts/slurm-down.sh")], check=False, timeout=120)


def _through_slurm(work: Path, target: str) -> tuple[subprocess.CompletedProcess, str]:
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    result = snakemake(work, target, "--workflow-profile", str(REPO / "profiles/slurm"), "--jobs", "4",
                       "--slurm-init-seconds-before-status-checks", "5", timeout=1800)
    return result, since


def _slurm_jobs(since: str) -> list[dict[str, str]]:
    """Jobs Slurm accounted since ``since``: state, the rule (the plugin's job comment) and the TRES it got."""
    res = subprocess.run(["sacct", "-X", "-n", "-P", "-S", since, "-o", "JobID,State,Comment,AllocTRES"],
                         capture_output=True, text=True, check=True)
    rows = [line.split("|") for line in res.stdout.splitlines() if line.strip()]
    return [{"id": r[0], "state": r[1], "comment": r[2], "tres": r[3]} for r in rows]


def test_gpu_training_chain_goes_through_sbatch_and_matches_local(slurm, tmp_path):
    target = "results/runs/bp4d/scratch/baseline/test1/metrics.json"
    work = workdir(tmp_path / "slurm", REPO / ".test/config/config.yaml")
    result, since = _through_slurm(work, target)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    jobs = _slurm_jobs(since)
    # synthau and frame_index are local rules; every shard's landmarks/crops/heatmaps job, the gather and the
    # training went to Slurm, one sbatch each
    planned = job_counts(result.stdout + result.stderr)
    remote = {rule: n for rule, n in planned.items() if rule not in LOCAL_RULES}
    assert set(remote) == {"landmarks", "crops", "heatmaps", "gather", "train"}, planned
    assert len(jobs) == sum(remote.values()) and all(j["state"] == "COMPLETED" for j in jobs), jobs
    for rule, n in remote.items():
        assert sum(j["comment"].startswith(f"rule_{rule}") for j in jobs) == n, (rule, jobs)
    gpu_jobs = [j for j in jobs if "gres/gpu=1" in j["tres"]]
    assert len(gpu_jobs) == 1 and "train" in gpu_jobs[0]["comment"], jobs
    log = (work / "results/logs/train/bp4d-scratch-baseline-test1.log").read_text()
    assert "Traceback" not in log

    local = workdir(tmp_path / "local", REPO / ".test/config/config.yaml")
    ran = snakemake(local, target, "--cores", "2")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    a, b = (json.loads((w / target).read_text()) for w in (work, local))
    assert a["f1"] == b["f1"] and a["test_frames"] == b["test_frames"]


@pytest.mark.slurm_full
def test_tiny_dag_through_slurm_equals_local(slurm, tmp_path):
    work = workdir(tmp_path / "slurm", REPO / ".test/config/config.yaml")
    result, since = _through_slurm(work, "all")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    jobs = _slurm_jobs(since)
    assert jobs and all(j["state"] == "COMPLETED" for j in jobs), jobs
    # every job but the local bookkeeping rules went through sbatch, and each was accounted by Slurm
    planned = job_counts(result.stdout + result.stderr)
    assert len(jobs) == sum(n for rule, n in planned.items() if rule not in LOCAL_RULES), (planned, jobs)
    gpu_rules = planned["train"] + planned["cross_domain"] + planned["pretrain"]
    assert sum("gres/gpu=1" in j["tres"] for j in jobs) == gpu_rules
    local = workdir(tmp_path / "local", REPO / ".test/config/config.yaml")
    ran = snakemake(local, "all", "--cores", "2")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    for table in ("table1.csv", "table2.csv", "table3.csv"):
        assert (work / "results/tables" / table).read_text() == (local / "results/tables" / table).read_text()
