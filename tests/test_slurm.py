"""The DAG through a real Slurm: a one-node cluster with 4 fake GPUs brought up by scripts/slurm-up.sh.

`make test` runs a small slice (the landmarks → crops → heatmaps → one GPU training chain: every job through
sbatch, the GPU job given a GPU by Slurm's gres) and checks its result equals a local run's. `make test-slurm`
also runs the whole tiny DAG through Slurm and compares every table with a local run (marker `slurm_full`).
Needs root to install and start the daemons; skipped (with the reason) where that is impossible.
"""

import fcntl
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


SLURM_ROOT = Path(os.environ.get("AU_TTT_SLURM_ROOT", "/var/lib/au-ttt-slurm"))
STALE = "planted-by-test-slurm"


@pytest.fixture(scope="module")
def slurm():
    """A one-node Slurm brought up from empty state by scripts/slurm-up.sh, stopped by slurm-down.sh afterwards.

    Every run is a first bring-up (the script wipes and recreates its state root), so a machine that ran this
    before tests exactly what a new machine does. Clients find the cluster through SLURM_CONF.
    """
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("bringing up Slurm needs root and apt-get (scripts/slurm-up.sh installs Debian packages)")
    env = {**os.environ, "AU_TTT_SLURM_ROOT": str(SLURM_ROOT)}
    # one test session at a time per cluster root: a second session's bring-up would wipe this one's cluster
    SLURM_ROOT.parent.mkdir(parents=True, exist_ok=True)
    lock = (SLURM_ROOT.parent / f"{SLURM_ROOT.name}.test-lock").open("w")
    deadline = time.monotonic() + 3600
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(f"another test session held {lock.name} for an hour")
            time.sleep(1)
    (SLURM_ROOT / "slurmctld").mkdir(parents=True, exist_ok=True)   # state an earlier bring-up could have left
    (SLURM_ROOT / "slurmctld" / STALE).write_text("an earlier cluster's state\n")
    res = subprocess.run([str(REPO / "scripts/slurm-up.sh")], capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(SLURM_ROOT / "etc/slurm.conf"))
        yield
    down = subprocess.run([str(REPO / "scripts/slurm-down.sh")], capture_output=True, text=True, timeout=180, env=env)
    lock.close()
    assert down.returncode == 0, down.stdout + down.stderr


def test_every_bring_up_is_a_first_bring_up(slurm):
    """The state root was wiped (the planted state is gone), so this run went through the fresh-database path
    that used to kill slurmctld on new machines; the controller registered its cluster with slurmdbd."""
    assert not (SLURM_ROOT / "slurmctld" / STALE).exists()
    clusters = subprocess.run(["sacctmgr", "-n", "-P", "show", "cluster", "format=Cluster"], capture_output=True,
                              text=True, check=True).stdout.split()
    assert clusters == ["au-ttt"], clusters


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
    target = "results/runs/bp4d/scratch/baseline/seed0/test1/metrics.json"
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
    log = (work / "results/logs/train/bp4d-scratch-baseline-seed0-test1.log").read_text()
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


def test_slurm_down_stops_marked_daemons_and_jobs_and_spares_the_rest(tmp_path):
    """A daemon of the cluster whose pid file is gone is still stopped (found by the environment marker that
    slurm-up.sh gives every daemon), and so is a job process of the cluster whose slurmstepd died; a pid file
    whose pid now belongs to someone else, and a client that only points at the cluster, are left alone."""
    root = tmp_path / "cluster"
    (root / "run").mkdir(parents=True)
    conf = f"{root}/etc/slurm.conf"
    sleep = lambda **env: subprocess.Popen(["sleep", "600"], env={**os.environ, **env})  # noqa: E731
    stray = sleep(AU_TTT_SLURM_DAEMON=str(root))
    job = sleep(SLURM_CONF=conf, SLURM_JOB_ID="7")
    client = sleep(SLURM_CONF=conf)
    bystander = sleep()
    (root / "run" / "slurmd.pid").write_text(f"{bystander.pid}\n")   # a stale pid file, its pid reused
    try:
        res = subprocess.run([str(REPO / "scripts/slurm-down.sh")], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "AU_TTT_SLURM_ROOT": str(root)})
        assert res.returncode == 0, res.stderr
        assert stray.wait(timeout=60) == -15 and job.wait(timeout=60) == -15   # SIGTERM, from the down script
        assert bystander.poll() is None and client.poll() is None
    finally:
        for proc in (stray, job, client, bystander):
            proc.kill()
            proc.wait()
