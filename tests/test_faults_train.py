"""Fault injection on the real `au-ttt train` command (SynthAU replica, 2 DataLoader workers, SQLite MLflow store).

kill -9 during an epoch and right after a checkpoint, then `--resume`: the final metrics, weights and
predictions equal an uninterrupted run's; no worker process outlives the kill (checked by PID); the tracked
run is one MLflow run continued across the kills, with every epoch logged exactly once. A changed input
restarts the run, marks the killed MLflow run KILLED and keeps its epochs in tracking.json. A NaN loss
ends `au-ttt train` with one error line, exit status 2 and no final model. A second `au-ttt train` on a
run directory that another one is writing is refused at once; the first one's kill -9 leaves nothing that
blocks the next run.

The kill points are exact: ``AU_TTT_STOP_AT=<point>`` makes the process stop itself there (SIGSTOP); the
test then lists its worker processes and sends SIGKILL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO
from PIL import Image
from runkit import descendants, state, wait_for
from safetensors.torch import load_file

from au_ttt.cli import main
from au_ttt.locks import run_lock_path
from au_ttt.train.runtime import ENV_STOP_AT

pytestmark = pytest.mark.slow
EXE = Path(sys.executable).with_name("au-ttt")
EPOCHS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 144-frame BP4D-format SynthAU replica through index → landmarks → crops → heatmaps, and a config."""
    root = tmp_path_factory.mktemp("faults")
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["tracking"].update(uri_dir=str(root / "mlflow"), experiment="faults")
    cfg["train"].update(epochs=EPOCHS, eval_every=1, num_workers=2, threads=1, batch_size=16)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    d = root / "bp4d"

    def au_ttt(*args):
        assert main([*map(str, args)]) == 0, args

    au_ttt("synth", "--out", root / "synth", "--subjects-per-part", 2, "--bp4d-tasks", 3, "--bp4d-frames", 8,
           "--disfa-frames", 5, "--no-progress")
    au_ttt("data", "index", "--dataset", "bp4d", "--root", root / "synth/BP4D", "--out", d / "index.parquet",
           "--no-progress")
    au_ttt("landmarks", "--config", config, "--backend", "provided", "--index", d / "index.parquet",
           "--dataset-root", root / "synth/BP4D", "--out", d / "landmarks.npz", "--no-progress")
    au_ttt("crops", "--config", config, "--index", d / "index.parquet", "--landmarks", d / "landmarks.npz",
           "--out", d / "crops", "--no-progress")
    au_ttt("heatmaps", "--config", config, "--index", d / "index.parquet", "--crops", d / "crops",
           "--out", d / "heatmaps", "--no-progress")
    return {"root": root, "config": config, "d": d, "cfg": cfg}


def _args(data, out: Path, parent: str, crops: Path | None = None) -> list[str]:
    d = data["d"]
    return ["train", "--config", str(data["config"]), "--dataset", "bp4d", "--test-part", "1", "--index",
            str(d / "index.parquet"), "--crops", str(crops or d / "crops"), "--heatmaps", str(d / "heatmaps"),
            "--out", str(out), "--parent", parent, "--device", "cpu", "--resume", "--no-progress"]


def _train(data, out: Path, parent: str, stop_at: str | None = None, crops: Path | None = None,
           while_stopped: Callable[[int], None] | None = None) -> list[int]:
    """Run `au-ttt train`; with ``stop_at``, kill -9 it at that point (after ``while_stopped(pid)``, if given).
    Returns the PIDs that had to die."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(ENV_STOP_AT, None)
    if stop_at:
        env[ENV_STOP_AT] = stop_at
    proc = subprocess.Popen([str(EXE), *_args(data, out, parent, crops)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if stop_at is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        return []

    def stopped():
        if proc.poll() is not None:
            pytest.fail(f"`au-ttt train` ended before {stop_at}: {proc.stderr.read()[-3000:]}")
        return state(proc.pid) == "T"

    try:
        wait_for(stopped, 600, f"`au-ttt train` to stop at {stop_at}", poll=0.1)
        workers = descendants(proc.pid)
        if while_stopped is not None:
            while_stopped(proc.pid)
    finally:
        proc.kill()  # SIGKILL
        proc.wait()
    gone = lambda: all(state(p) in (None, "Z") for p in workers)  # noqa: E731 (zombies of init are dead)
    wait_for(gone, 60, f"the workers {workers} to die with their parent")
    return workers


def _record(out: Path) -> dict:
    return json.loads((out / "tracking.json").read_text())


def _steps(record: dict, key: str = "train_total") -> list[int]:
    return [step for step, *_ in record["metrics"][key]]


def _client(data):
    from mlflow import MlflowClient

    from au_ttt.train.tracking import TrackingConfig, tracking_uri

    return MlflowClient(tracking_uri(TrackingConfig(uri_dir=data["cfg"]["tracking"]["uri_dir"])))


def test_kill9_mid_epoch_and_after_checkpoint_then_resume_is_identical(data):
    root = data["root"]
    reference, killed = root / "reference", root / "killed"
    _train(data, reference, "faults/reference")

    workers = _train(data, killed, "faults/killed", stop_at="epoch2.step2")  # during epoch 2
    assert len(workers) >= 2, f"expected the 2 DataLoader workers to be running, found {workers}"
    assert not (killed / "metrics.json").exists() and not (killed / "model.safetensors").exists()
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["epoch"] == 0
    first = _record(killed)
    assert first["status"] == "RUNNING" and _steps(first) == [1]
    run_id = first["mlflow"]["run_id"]

    _train(data, killed, "faults/killed", stop_at="epoch3.checkpointed")  # right after epoch 3's checkpoint
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert _steps(_record(killed)) == [1, 2]  # epoch 3 was checkpointed but not yet logged
    assert not (killed / "metrics.json").exists()

    _train(data, killed, "faults/killed")
    log = (killed / "train.log").read_text()
    assert "resuming after epoch 1" in log and "resuming after epoch 3" in log

    assert (killed / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()
    a, b = load_file(reference / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(pd.read_parquet(killed / "predictions.parquet"),
                                  pd.read_parquet(reference / "predictions.parquet"))
    losses = [[h["train_total"] for h in json.loads((r / "history.json").read_text())] for r in (reference, killed)]
    assert losses[0] == losses[1] and len(losses[0]) == EPOCHS

    record = _record(killed)  # one tracked run, continued twice, each epoch once
    assert record["mlflow"]["run_id"] == run_id and record["status"] == "FINISHED" and len(record["resumes"]) == 2
    assert _steps(record) == [1, 2, 3] and _steps(record, "test_f1") == [1, 2, 3]
    assert _steps(record, "final_f1_mean") == [EPOCHS] and "previous_runs" not in record
    client = _client(data)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["au_ttt.run_key"] == record["tags"]["au_ttt.run_key"]
    assert sorted(m.step for m in client.get_metric_history(run_id, "train_total")) == [1, 2, 3]
    parent = run.data.tags["mlflow.parentRunId"]
    children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert [c.info.run_id for c in children] == [run_id]


def test_changed_input_restarts_and_marks_the_killed_run(data):
    root, d = data["root"], data["d"]
    out = root / "restarted"
    _train(data, out, "faults/restarted", stop_at="epoch2.step1")
    old = _record(out)
    assert old["status"] == "RUNNING" and _steps(old) == [1]

    crops = root / "crops-edited"  # the same store with one crop re-encoded: other bytes, same pixels size
    subprocess.run(["cp", "-a", str(d / "crops"), str(crops)], check=True)
    one = sorted((crops / "images").rglob("*.jpg"))[0]
    Image.open(one).save(one, quality=60)
    _train(data, out, "faults/restarted", crops=crops)
    assert "crop store content changed since it was written; training from the start" in \
        (out / "train.log").read_text()

    record = _record(out)
    assert record["status"] == "FINISHED" and record["mlflow"]["run_id"] != old["mlflow"]["run_id"]
    assert _steps(record) == [1, 2, 3]
    (kept,) = record["previous_runs"]  # the killed run's epochs stay in tracking.json
    assert kept["mlflow"]["run_id"] == old["mlflow"]["run_id"] and kept["status"] == "KILLED"
    assert _steps(kept) == [1] and kept["tags"]["au_ttt.run_key"] != record["tags"]["au_ttt.run_key"]
    client = _client(data)
    assert client.get_run(old["mlflow"]["run_id"]).info.status == "KILLED"
    assert client.get_run(record["mlflow"]["run_id"]).info.status == "FINISHED"


def test_nan_loss_exits_2_with_one_line_and_no_model(data, tmp_path, capsys):
    cfg = json.loads(json.dumps(data["cfg"]))
    cfg["train"].update(lr=1e12, min_lr=0.0, num_workers=0)
    config = tmp_path / "nan.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    args = _args(data, out, "faults/nan")
    args[args.index("--config") + 1] = str(config)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("au-ttt train: error: bp4d-test1-model epoch 1, step ") and "\n" not in err
    assert "lower train.lr (now 1e+12), or check the inputs; no checkpoint was written" in err
    assert not (out / "model.safetensors").exists() and not (out / "metrics.json").exists()
    record = _record(out)
    assert record["status"] == "FAILED"
    assert _client(data).get_run(record["mlflow"]["run_id"]).info.status == "FAILED"


def test_a_second_train_on_the_same_out_is_refused_and_a_killed_holder_does_not_block(data, tmp_path):
    """Two configs, one --out, both --resume: the second exits 2 naming the first and changes nothing in the run
    directory; after the first is killed with SIGKILL, a third run trains to the end."""
    root = data["root"]
    out = root / "locked"
    other = json.loads(json.dumps(data["cfg"]))
    other["train"]["lr"] = 3e-4  # another run's record: what a mix-up would put into this run directory
    other_config = tmp_path / "other.yaml"
    other_config.write_text(yaml.safe_dump(other))
    seen = {}

    def second_train(holder: int) -> None:
        before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
        args = _args(data, out, "faults/locked-b")
        args[args.index("--config") + 1] = str(other_config)
        res = subprocess.run([str(EXE), *args], env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                             text=True, timeout=600)
        seen.update(rc=res.returncode, err=res.stderr.strip(), holder=holder,
                    unchanged=before == {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})

    # stop the first run inside its first epoch (it holds the lock from before its data are loaded)
    _train(data, out, "faults/locked-a", stop_at="epoch1.step1", while_stopped=second_train)
    assert seen["rc"] == 2, seen["err"][-3000:]
    err = seen["err"]
    assert err.startswith(f"au-ttt train: error: {out}: another process is writing this folder "
                          f"(pid {seen['holder']} on ") and "\n" not in err
    assert f"--out {out}" in err and "give this run another --out" in err and str(other_config) not in err
    assert seen["unchanged"] and "faults/locked-b" not in (out / "train.log").read_text()
    assert f"pid {seen['holder']} on " in run_lock_path(out).read_text()  # the killed holder's record stays

    _train(data, out, "faults/locked-a")  # after the kill -9: not blocked
    record = _record(out)
    assert record["status"] == "FINISHED" and json.loads((out / "run.json").read_text())["train"]["lr"] == \
        data["cfg"]["train"]["lr"]
    assert not run_lock_path(out).exists()
