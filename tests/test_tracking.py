"""Run tracking: provenance hashes, concurrent MLflow logging, JSON fallback, the mlflow-ui command."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from runkit import sigint_default

from au_ttt.cli import main
from au_ttt.errors import InputError
from au_ttt.train.provenance import config_hash, flatten, git_state, manifest_hash, run_tags
from au_ttt.train.tracking import PARENT_TAG, RunLogger, TrackingConfig, log_parent_metrics, tracking_uri

# One fold job: 20 epochs of metrics, the config as params, an artifact, all under parent "row-A".
WORKER = """
import sys
from pathlib import Path
from au_ttt.train.tracking import RunLogger, TrackingConfig
store, out, fold = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
cfg = TrackingConfig(uri_dir=store, experiment="exp-concurrent")
config = {"model": {"depth": 2, "embed_dim": 32}, "train": {"lr": 1e-3 * fold, "fold": fold}}
with RunLogger(cfg, out, run_name=f"fold{fold}", parent="row-A", tags={"fold": fold}, config=config) as run:
    for step in range(20):
        run.log_metrics({"loss": fold + 1.0 / (step + 1), "f1": step / 100}, step=step)
    (out / "curve.csv").write_text("step,loss\\n0,1\\n")
    run.log_artifact(out / "curve.csv")
"""


@dataclasses.dataclass(frozen=True)
class _Section:
    depth: int = 2
    dims: tuple[int, ...] = (1, 2)


def test_flatten_and_config_hash():
    nested = {"model": {"depth": 2, "dims": (1, 2), "opt": {}}, "lr": 0.1}
    assert flatten(nested) == {"model.depth": 2, "model.dims": [1, 2], "model.opt": {}, "lr": 0.1}
    assert flatten({"m": _Section()}) == {"m.depth": 2, "m.dims": [1, 2]}
    # canonical JSON: sorted keys, no spaces, tuples as lists, dataclasses as dicts
    assert config_hash({"b": 1, "a": [1, 2]}) == hashlib.sha256(b'{"a":[1,2],"b":1}').hexdigest()
    assert config_hash({"a": (1, 2), "b": 1}) == config_hash({"b": 1, "a": [1, 2]})
    assert config_hash(_Section()) == config_hash({"depth": 2, "dims": [1, 2]})
    assert config_hash(_Section(depth=3)) != config_hash(_Section())


def test_manifest_hash(tmp_path):
    f = tmp_path / "index.csv"
    f.write_bytes(b"subject,frame\nF001,1\n")
    assert manifest_hash(f) == hashlib.sha256(b"subject,frame\nF001,1\n").hexdigest()
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("x")
    (d / "sub" / "b.txt").write_text("y")
    h = manifest_hash(d)  # the run key's tree digest: sorted relative paths, sizes and bytes
    assert h == hashlib.sha256(b"a.txt\x001\x00x" + b"sub/b.txt\x001\x00y").hexdigest()
    os.utime(d / "a.txt", (1, 1))
    assert manifest_hash(d) == h  # mtimes do not matter
    (d / "sub" / "b.txt").rename(d / "sub" / "c.txt")
    assert manifest_hash(d) != h  # names do
    with pytest.raises(InputError, match=r"missing.*manifest not found"):
        manifest_hash(tmp_path / "missing")


def test_git_state(tmp_path):
    assert git_state(tmp_path) == {"git.commit": "unknown", "git.dirty": "unknown", "git.diff_hash": "unknown"}
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    (tmp_path / "a.py").write_text("x = 1\n")
    for cmd in (["init", "-q"], ["add", "a.py"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", "-C", str(tmp_path), *cmd], check=True, env=env)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert git_state(tmp_path) == {"git.commit": head, "git.dirty": "false", "git.diff_hash": ""}
    (tmp_path / "a.py").write_text("x = 2\n")
    dirty = git_state(tmp_path)
    assert dirty["git.commit"] == head and dirty["git.dirty"] == "true" and len(dirty["git.diff_hash"]) == 16
    tags = run_tags({"a": 1}, tmp_path / "a.py", root=tmp_path)
    assert tags["config_hash"] == config_hash({"a": 1}) and tags["mlflow.source.git.commit"] == head
    assert tags["data_manifest_hash"] == hashlib.sha256(b"x = 2\n").hexdigest()


def test_concurrent_runs_share_one_store(tmp_path):
    store = tmp_path / "mlflow"
    outs = [tmp_path / f"fold{i}" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(store), str(o), str(i)], stderr=subprocess.PIPE)
             for i, o in enumerate(outs)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert not any("MLflow tracking disabled" in e for e in errors), errors

    from mlflow import MlflowClient

    cfg = TrackingConfig(uri_dir=str(store), experiment="exp-concurrent")
    assert tracking_uri(cfg) == f"sqlite:///{store.resolve()}/mlflow.db" and tracking_uri(cfg).startswith("sqlite:////")
    client = MlflowClient(tracking_uri(cfg))
    exp = client.get_experiment_by_name("exp-concurrent")
    assert exp.artifact_location == (store / "artifacts").resolve().as_uri()
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get(PARENT_TAG) == "row-A"]
    assert len(parents) == 1  # created once although four jobs asked for it at the same time
    children = {r.info.run_name: r for r in runs if r.info.run_id != parents[0].info.run_id}
    assert sorted(children) == ["fold0", "fold1", "fold2", "fold3"]
    for i, out in enumerate(outs):
        run = children[f"fold{i}"]
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["fold"] == str(i) and run.data.tags["host"] and "git.commit" in run.data.tags
        assert run.data.params == {"model.depth": "2", "model.embed_dim": "32", "train.lr": str(1e-3 * i),
                                   "train.fold": str(i)}
        history = client.get_metric_history(run.info.run_id, "loss")
        assert sorted((m.step, m.value) for m in history) == [(s, i + 1.0 / (s + 1)) for s in range(20)]
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["curve.csv"]
        record = json.loads((out / "tracking.json").read_text())
        assert record["mlflow"]["run_id"] == run.info.run_id and record["mlflow"]["error"] is None
        assert record["mlflow"]["parent_run_id"] == parents[0].info.run_id
    assert log_parent_metrics(cfg, "row-A", {"f1_mean": 0.5}) == parents[0].info.run_id
    assert client.get_run(parents[0].info.run_id).data.metrics == {"f1_mean": 0.5}


def _train(run: RunLogger, out: Path) -> None:
    run.log_params({"model": {"depth": 2}, "flag": True})
    for step in range(3):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    run.set_tags({"gpu.physical_id": "1"})
    (out / "a.txt").write_text("a")
    run.log_artifact(out / "a.txt")


def _check_json(out: Path, error: bool) -> dict:
    record = json.loads((out / "tracking.json").read_text())
    assert record["status"] == "FINISHED" and record["end_time"] >= record["start_time"]
    assert {k: record["params"][k] for k in ("model.depth", "flag")} == {"model.depth": "2", "flag": "true"}
    assert [m[:2] for m in record["metrics"]["loss"]] == [[0, 1.0], [1, 0.5], [2, 1 / 3]]  # [step, value, ms]
    assert all(isinstance(m[2], int) and m[2] >= record["start_time"] * 1000 - 1 for m in record["metrics"]["loss"])
    assert record["tags"]["gpu.physical_id"] == "1" and record["tags"]["dataset"] == "BP4D"
    assert record["tags"]["config_hash"] == "none" and "git.dirty" in record["tags"]
    assert record["artifacts"] == [str((out / "a.txt").resolve())]
    assert (record["mlflow"]["error"] is not None) == error
    assert not list(out.glob("*.tmp"))  # atomic writes left no temp files
    return record


def test_unwritable_store_falls_back_to_json(tmp_path, caplog):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the store directory should be")
    cfg = TrackingConfig(uri_dir=str(blocker / "mlflow"))
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="au_ttt.train.tracking"), \
            RunLogger(cfg, out, run_name="fold1", parent="row", tags={"dataset": "BP4D"}) as run:
        _train(run, out)
    assert run.run_id is None
    assert len([r for r in caplog.records if "MLflow tracking disabled" in r.message]) == 1
    record = _check_json(out, error=True)
    assert "starting the MLflow run" in record["mlflow"]["error"]


def test_mlflow_error_mid_run_warns_once_and_keeps_logging(tmp_path, caplog):
    cfg = TrackingConfig(uri_dir=str(tmp_path / "mlflow"))
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="au_ttt.train.tracking"), \
            RunLogger(cfg, out, run_name="fold1", tags={"dataset": "BP4D"}) as run:
        assert run.run_id is not None
        run.log_params({"subjects": "F001," * 2000})  # 10000 characters: over MLflow's 6000 limit

        def broken(*args, **kwargs):
            raise OSError("disk full")

        run._client.log_batch = broken
        _train(run, out)
    assert len([r for r in caplog.records if "MLflow tracking disabled" in r.message]) == 1
    record = _check_json(out, error=True)
    assert "disk full" in record["mlflow"]["error"] and record["mlflow"]["run_id"] == run.run_id
    from mlflow import MlflowClient

    partial = MlflowClient(tracking_uri(cfg)).get_run(run.run_id)  # closed and marked, not left RUNNING
    assert partial.info.status == "FINISHED" and partial.data.tags["au_ttt.mirror"].startswith("incomplete")
    assert len(partial.data.params["subjects"]) == 6000 and partial.data.params["subjects"].endswith("json]")
    assert record["params"]["subjects"] == "F001," * 2000


def test_disabled_tracking_writes_only_json(tmp_path):
    cfg = TrackingConfig(uri_dir=str(tmp_path / "mlflow"), enabled=False)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"), RunLogger(cfg, out, run_name="x", tags={"dataset": "BP4D"}):
        raise RuntimeError("boom")
    assert json.loads((out / "tracking.json").read_text())["status"] == "FAILED"
    with RunLogger(cfg, out, run_name="x", tags={"dataset": "BP4D"}) as run:
        _train(run, out)
    _check_json(out, error=False)
    assert not (tmp_path / "mlflow").exists()
    with pytest.raises(InputError, match="run name \"it's\" has characters"):
        RunLogger(cfg, out, run_name="x", parent="it's")
    with pytest.raises(InputError, match=r"missing\.txt: artifact to log does not exist"):
        run.log_artifact(out / "missing.txt")


def test_mlflow_ui_command_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("model: {}\ntracking:\n  uri_dir: store\n  experiment: e\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["mlflow-ui", "--config", str(config), "--port", "5123", "--print-command"]) == 0
    finally:
        os.chdir(cwd)
    cmd = capsys.readouterr().out.split()
    assert cmd[1:] == ["ui", "--backend-store-uri", f"sqlite:///{tmp_path.resolve()}/store/mlflow.db",
                       "--host", "127.0.0.1", "--port", "5123", "--workers", "1"]
    config.write_text("tracking:\n  uri: store\n")
    assert main(["mlflow-ui", "--config", str(config), "--print-command"]) == 2
    assert "unknown key 'tracking.uri'" in capsys.readouterr().err


def _start_ui(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """`au-ttt mlflow-ui` in a session of its own on a free port, once /health answers HTTP 200."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "c.yaml"
    config.write_text(f"tracking:\n  uri_dir: {tmp_path / 'store'}\n")
    exe = Path(sys.executable).with_name("au-ttt")
    # output to a file, not a pipe nobody reads while the server runs: a full pipe would block its writes
    with open(tmp_path / "ui.log", "wb") as log:
        proc = subprocess.Popen([str(exe), "mlflow-ui", "--config", str(config), "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=sigint_default)
    deadline = time.monotonic() + 180  # a bound for a loaded 2-core machine, not a speed requirement
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                assert resp.status == 200
                return proc, port
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"mlflow-ui ended with status {proc.returncode}: "
                            f"{(tmp_path / 'ui.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                _kill_session(proc)
                pytest.fail("mlflow ui did not answer /health within 180 s")
            time.sleep(0.3)


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL every process of the session ``proc`` leads (the server has a process group of its own)."""
    from runkit import session_pids

    for pid in [proc.pid, *session_pids(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.slow
def test_mlflow_ui_serves(tmp_path):
    """Start the real UI on a free port, expect HTTP 200 from /health, stop it with Ctrl-C (SIGINT)."""
    proc, port = _start_ui(tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        # a bound for a loaded 2-core machine, not a speed requirement: the server's graceful shutdown took
        # longer than 20 s at load 4 on a fresh clone's `make test`
        assert proc.wait(timeout=180) == 0
        assert f"http://127.0.0.1:{port}" in (tmp_path / "ui.log").read_text()
    finally:
        _kill_session(proc)


@pytest.mark.slow
def test_mlflow_ui_server_dies_with_a_killed_au_ttt(tmp_path):
    """kill -9 of `au-ttt mlflow-ui`: no process of its session stays and the port closes."""
    import socket

    from runkit import descendants, listening_sockets, session_pids, wait_for

    proc, port = _start_ui(tmp_path)
    try:
        tree = descendants(proc.pid)
        assert ("127.0.0.1", port) in listening_sockets(tree), tree  # the server is a descendant, not au-ttt
        proc.kill()
        proc.wait()

        def closed() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) != 0

        wait_for(lambda: not session_pids(proc.pid), 60, f"the server processes {tree} to die with au-ttt")
        wait_for(closed, 60, f"port {port} to close")
    finally:
        _kill_session(proc)


# A fold job killed by SIGKILL after logging epochs 1 and 2: its MLflow run is left RUNNING.
# argv[3]: 'continue' = a resumed job (continue_run=True).
KILLED_JOB = """
import os, signal, sys
from au_ttt.train.tracking import RUN_KEY_TAG, RunLogger, TrackingConfig
run = RunLogger(TrackingConfig(uri_dir=sys.argv[1], experiment="exp-kill"), sys.argv[2], run_name="fold1",
                parent="row-K", tags={RUN_KEY_TAG: "key-1"}, config={"train": {"lr": 0.1}},
                continue_run=sys.argv[3] == "continue")
run.__enter__()
for epoch in (1, 2):
    run.log_metrics_once({"loss": 1.0 / epoch}, step=epoch)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_run_is_continued_or_closed(tmp_path):
    """kill -9 of a tracked job, then: the same run key continues the same MLflow run (each epoch once); a new
    key closes the killed run as KILLED and starts another, keeping the old epochs in tracking.json."""
    from mlflow import MlflowClient

    from au_ttt.train.tracking import RUN_KEY_TAG

    store, out = tmp_path / "mlflow", tmp_path / "fold1"
    cfg = TrackingConfig(uri_dir=str(store), experiment="exp-kill")
    client = MlflowClient(tracking_uri(cfg))

    def killed_job(how: str) -> str:
        proc = subprocess.run([sys.executable, "-c", KILLED_JOB, str(store), str(out), how], capture_output=True,
                              text=True)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        record = json.loads((out / "tracking.json").read_text())
        assert record["status"] == "RUNNING" and client.get_run(record["mlflow"]["run_id"]).info.status == "RUNNING"
        return record["mlflow"]["run_id"]

    first = killed_job("new")
    with RunLogger(cfg, out, run_name="fold1", parent="row-K", tags={RUN_KEY_TAG: "key-1"},
                   config={"train": {"lr": 0.1}}, continue_run=True) as run:
        assert run.run_id == first and client.get_run(first).info.status == "RUNNING"  # reopened
        for epoch in (1, 2, 3):  # a resumed job replays its checkpoint's history: only epoch 3 is new
            run.log_metrics_once({"loss": 1.0 / epoch}, step=epoch)
    record = json.loads((out / "tracking.json").read_text())
    assert [s for s, *_ in record["metrics"]["loss"]] == [1, 2, 3] and len(record["resumes"]) == 1
    assert sorted(m.step for m in client.get_metric_history(first, "loss")) == [1, 2, 3]
    assert client.get_run(first).info.status == "FINISHED" and record["status"] == "FINISHED"

    second = killed_job("continue")  # a job of the same key continues... and is killed again
    assert second == first
    with RunLogger(cfg, out, run_name="fold1", parent="row-K", tags={RUN_KEY_TAG: "key-2"},
                   config={"train": {"lr": 0.2}}, continue_run=True) as run:  # inputs changed: a new run
        run.log_metrics({"loss": 0.9}, step=1)
    record = json.loads((out / "tracking.json").read_text())
    assert run.run_id != first and client.get_run(first).info.status == "KILLED"
    (old,) = record["previous_runs"]
    assert old["status"] == "KILLED" and old["mlflow"]["run_id"] == first and old["tags"][RUN_KEY_TAG] == "key-1"
    assert [s for s, *_ in old["metrics"]["loss"]] == [1, 2, 3]  # epochs 1, 2 twice-killed stay logged once
    assert record["params"]["train.lr"] == "0.2" and [s for s, *_ in record["metrics"]["loss"]] == [1]
    parent = client.get_run(first).data.tags["mlflow.parentRunId"]
    assert client.get_run(run.run_id).data.tags["mlflow.parentRunId"] == parent


def test_continuing_a_record_that_never_reached_mlflow_replays_it(tmp_path, caplog):
    from mlflow import MlflowClient

    from au_ttt.train.tracking import RUN_KEY_TAG

    out = tmp_path / "run"
    unmirrored = RunLogger(TrackingConfig(uri_dir=str(tmp_path / "store"), enabled=False), out, run_name="f",
                           tags={RUN_KEY_TAG: "k"}, config={"a": 1}).__enter__()
    unmirrored.log_metrics({"loss": 0.5}, step=1)  # ...and the job dies here (no finish)
    cfg = TrackingConfig(uri_dir=str(tmp_path / "store"))
    with RunLogger(cfg, out, run_name="f", tags={RUN_KEY_TAG: "k"}, config={"a": 1}, continue_run=True) as run:
        run.log_metrics_once({"loss": 0.5}, step=1)
        run.log_metrics_once({"loss": 0.25}, step=2)
    client = MlflowClient(tracking_uri(cfg))
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "loss")] == [(1, 0.5), (2, 0.25)]
    assert client.get_run(run.run_id).data.params == {"a": "1"}
    (out / "tracking.json").write_text('{"run_name": "f", "metr')  # a damaged record is set aside, not fatal
    with caplog.at_level(logging.WARNING, logger="au_ttt.train.tracking"), \
            RunLogger(TrackingConfig(enabled=False), out, run_name="f") as again:
        again.log_metrics({"loss": 1.0}, step=1)
    assert "tracking.json: JSONDecodeError" in caplog.text
    (aside,) = out.glob("tracking.unreadable-*.json")
    assert aside.read_text() == '{"run_name": "f", "metr'


def test_interrupted_job_is_closed_as_killed(tmp_path):
    """SIGTERM (turned into KeyboardInterrupt by `au-ttt train`) or Ctrl-C closes the run KILLED, not FAILED."""
    cfg = TrackingConfig(enabled=False)
    for stop in (KeyboardInterrupt, SystemExit):
        with pytest.raises(stop), RunLogger(cfg, tmp_path / stop.__name__, run_name="x"):
            raise stop()
        assert json.loads((tmp_path / stop.__name__ / "tracking.json").read_text())["status"] == "KILLED"
