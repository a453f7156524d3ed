"""`au-ttt export`: a bundle scores exactly like its run directory; a damaged or inconsistent bundle is refused;
the MLflow pyfunc model (logged to the run's own MLflow run) gives the same probabilities, also when served."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from PIL import Image
from predict_support import make_run

from au_ttt.cli import main
from au_ttt.predict import samples
from au_ttt.train.tracking import TrackingConfig, tracking_uri

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the tests compare scores across runs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run tracked in a temporary MLflow store, its bundle (also logged as pyfunc) and a few photos."""
    tmp = tmp_path_factory.mktemp("export")
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["tracking"].update(uri_dir=str(tmp / "mlflow"), experiment="predict-test")
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    tracking = TrackingConfig(uri_dir=str(tmp / "mlflow"), experiment="predict-test")
    run = make_run(tmp / "run", config, "bp4d", tracking=tracking, manifest=config)
    photos = tmp / "photos"
    photos.mkdir()
    Image.fromarray(samples.astronaut()).save(photos / "astronaut.png")
    Image.fromarray(samples.group_photo()[0]).save(photos / "group.png")
    Image.fromarray(samples.no_face_images()["coffee"]).save(photos / "coffee.png")
    rc = main(["export", str(run), "--out", str(tmp / "bundle"), "--config", str(config), "--mlflow-run", "auto"])
    assert rc == 0
    run_id = json.loads((run / "tracking.json").read_text())["mlflow"]["run_id"]
    return {"tmp": tmp, "run": run, "bundle": tmp / "bundle", "photos": photos, "run_id": run_id,
            "uri": tracking_uri(tracking), "config": config}


def _predict(model, photos, out, *extra) -> tuple[int, pd.DataFrame | None]:
    rc = main(["predict", str(photos), "--model", str(model), "--out", str(out), "--no-progress", "--device", "cpu",
               *extra])
    path = Path(out) / "predictions.csv"
    return rc, (pd.read_csv(path) if rc == 0 and path.is_file() else None)


def test_bundle_is_self_describing(exported):
    b = exported["bundle"]
    assert sorted(p.name for p in b.iterdir()) == ["README.md", "bundle.json", "model.safetensors"]
    rec = json.loads((b / "bundle.json").read_text())
    from au_ttt.predict.bundle import sha256_file

    assert rec["weights"]["sha256"] == sha256_file(b / "model.safetensors") == sha256_file(
        exported["run"] / "model.safetensors")
    assert rec["aus"] == [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24] and rec["dataset"] == "bp4d"
    assert set(rec["thresholds"].values()) == {0.5}
    pre = rec["preprocessing"]
    assert pre["crops"]["size"] == 72 and pre["heatmaps"]["input_size"] == 64 == rec["model"]["img_size"]
    assert pre["normalisation"]["model_input_norm"] == "grey_standardize"
    prov = rec["provenance"]
    assert prov["f1_mean"] == 0.5 and prov["mlflow_run_id"] == exported["run_id"]
    assert len(prov["data_manifest_hash"]) == 64 and prov["git_commit"] != ""
    assert "SynthAU" in (b / "README.md").read_text()


def test_predict_with_the_bundle_equals_predict_with_the_run_directory(exported, tmp_path):
    rc1, from_run = _predict(exported["run"], exported["photos"], tmp_path / "run")
    rc2, from_bundle = _predict(exported["bundle"], exported["photos"], tmp_path / "bundle")
    assert rc1 == rc2 == 0
    assert len(from_run) == 1 + 9 + 1
    pd.testing.assert_frame_equal(from_run, from_bundle)
    assert (tmp_path / "run" / "group.csv").read_bytes() == (tmp_path / "bundle" / "group.csv").read_bytes()


def _copy_bundle(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_bundle_with_damaged_weights_is_refused(exported, tmp_path, capsys):
    bad = _copy_bundle(exported["bundle"], tmp_path / "bad")
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01                                    # one flipped bit in the weights
    (bad / "model.safetensors").write_bytes(bytes(data))
    rc, _ = _predict(bad, exported["photos"], tmp_path / "out")
    assert rc == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("embed_dim", 32, "does not match its weights"),
    ("depth", 1, "does not match its weights"),
    ("img_size", 48, "img_size 48"),
])
def test_bundle_whose_config_does_not_fit_its_weights_is_refused(exported, tmp_path, capsys, key, value, message):
    bad = _copy_bundle(exported["bundle"], tmp_path / "bad")
    rec = json.loads((bad / "bundle.json").read_text())
    rec["model"][key] = value
    (bad / "bundle.json").write_text(json.dumps(rec))
    rc, _ = _predict(bad, exported["photos"], tmp_path / "out")
    assert rc == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def pyfunc(exported):
    """The logged pyfunc model, loaded through MLflow's Python API (as `mlflow models serve` loads it)."""
    import mlflow

    mlflow.set_tracking_uri(exported["uri"])
    try:
        yield mlflow.pyfunc.load_model(f"runs:/{exported['run_id']}/model")
    finally:
        mlflow.set_tracking_uri(None)


def test_mlflow_pyfunc_gives_the_same_probabilities(exported, pyfunc, tmp_path, monkeypatch):
    import mlflow

    _, reference = _predict(exported["bundle"], exported["photos"], tmp_path / "ref")
    monkeypatch.setenv("AU_TTT_SERVE_ROOT", str(exported["photos"]))
    paths = [*sorted(str(p) for p in exported["photos"].iterdir()), str(exported["photos"] / "missing.png")]
    out = pyfunc.predict(pd.DataFrame({"path": paths}))
    assert out["error"].iloc[-1] == "not found" and int(out["success"].iloc[-1]) == 0
    out = out.iloc[:-1].drop(columns="error")
    pd.testing.assert_frame_equal(out.reset_index(drop=True), reference.reset_index(drop=True), check_dtype=False)
    status = mlflow.MlflowClient(exported["uri"]).get_run(exported["run_id"]).info.status
    assert status == "FINISHED"                                   # logging the model left the run as it was


def test_the_served_model_reads_only_inside_its_root(exported, pyfunc, tmp_path, monkeypatch):
    from au_ttt.predict.expand import OUTSIDE_ROOT

    photos = exported["photos"]
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.fromarray(samples.astronaut()).save(outside / "real.png")
    (outside / "text.png").write_text("not an image")
    os.symlink(outside / "real.png", photos / "link-out.png")     # a link inside the root pointing out
    try:
        monkeypatch.setenv("AU_TTT_SERVE_ROOT", str(photos))
        probes = [str(outside / "real.png"), str(outside / "text.png"), str(outside / "missing.png"), str(outside),
                  str(outside / "*.png"), "../outside/real.png", "link-out.png", "/etc/passwd"]
        out = pyfunc.predict(pd.DataFrame({"path": ["astronaut.png", *probes, "*.png"]}))
    finally:
        (photos / "link-out.png").unlink()
    by_input = out.groupby("input", sort=False)
    assert int(by_input.get_group("astronaut.png")["success"].iloc[0]) == 1    # relative paths: from the root
    for probe in probes:                # existing image, non-image, missing, folder, glob, .., link: one answer
        rows = by_input.get_group(probe)
        assert len(rows) == 1 and rows["error"].iloc[0] == OUTSIDE_ROOT and int(rows["success"].iloc[0]) == 0, probe
    globbed = {Path(p).name for p in out["input"] if str(p).startswith(str(photos))}
    assert globbed == {"astronaut.png", "coffee.png", "group.png"}              # the glob skipped the link
    monkeypatch.delenv("AU_TTT_SERVE_ROOT")
    monkeypatch.chdir(tmp_path)                                   # default root: the server's current folder
    out = pyfunc.predict(pd.DataFrame({"path": [str(photos / "astronaut.png"), "outside/real.png"]}))
    assert out["error"].tolist()[0] == OUTSIDE_ROOT and int(out["success"].iloc[1]) == 1


def test_predict_accepts_an_mlflow_model_uri(exported, tmp_path):
    _, reference = _predict(exported["bundle"], exported["photos"], tmp_path / "ref")
    rc, via_uri = _predict(f"runs:/{exported['run_id']}/model", exported["photos"], tmp_path / "uri",
                           "--config", str(exported["config"]))
    assert rc == 0
    pd.testing.assert_frame_equal(via_uri, reference)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_the_same_probabilities(exported, tmp_path):
    _, reference = _predict(exported["bundle"], exported["photos"], tmp_path / "ref")
    port = _free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    # `mlflow models serve` execs uvicorn from PATH: the venv's bin must be on it even when pytest runs as
    # .venv/bin/python without an activated venv (as `make test` does)
    env = {**os.environ, "MLFLOW_TRACKING_URI": exported["uri"], "OMP_NUM_THREADS": "1",
           "AU_TTT_SERVE_ROOT": str(exported["photos"]),
           "PATH": f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen([str(mlflow_cli), "models", "serve", "-m", f"runs:/{exported['run_id']}/model",
                               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                if time.time() > deadline:  # a guard on the wait, not a speed bound
                    pytest.fail("mlflow models serve did not start in 120 s")
                time.sleep(0.5)
        body = json.dumps({"dataframe_split": {"columns": ["path"],
                                               "data": [[str(exported["photos"] / "group.png")]]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            served = pd.DataFrame(json.loads(response.read())["predictions"])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    group = reference[reference["input"].str.endswith("group.png")].reset_index(drop=True)
    cols = [c for c in group.columns if c.endswith("_p")]
    assert len(served) == 9
    np.testing.assert_allclose(served[cols].to_numpy(float), group[cols].to_numpy(float), atol=1e-6)
