"""`au-ttt predict` on awkward inputs and folders: images too small to hold a face among good ones, a rerun into
an earlier run's --out (refused; --overwrite replaces it; a killed run's temporaries are swept), a photo far
larger than the detector needs, an image over the decode limit, and runs:/ model URIs without a usable store.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from PIL import Image
from predict_support import make_run

from au_ttt.cli import main
from au_ttt.predict import samples

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = [(1, 1), (5, 7), (19, 19), (19, 400)]          # (h, w): the shorter side is under --min-face 20


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("robust") / "run", REPO / "config/config.yaml", "bp4d")


def _predict(inputs, run, out, *extra) -> int:
    return main(["predict", *map(str, inputs), "--model", str(run), "--out", str(out), "--no-progress", "--device",
                 "cpu", *extra])


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                              check=True).stdout)


def test_images_too_small_for_a_face_are_counted_and_the_run_completes(run_dir, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(samples.astronaut()).save(d / "a_astronaut.png")
    for h, w in TINY:
        Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(d / f"tiny_{h}x{w}.png")
    Image.fromarray(samples.group_photo()[0]).save(d / "z_group.png")        # after the tiny ones: still scored
    out = tmp_path / "out"
    assert _predict([d], run_dir, out, "--overlay") == 0        # before the fix: torch.cat() error, exit 1
    summary = json.loads((out / "summary.json").read_text())
    rows = pd.read_csv(out / "predictions.csv")
    assert summary["scored_inputs"] == 2 + len(TINY) and summary["unreadable"] == []
    assert summary["too_small_frames"] == len(TINY) and summary["no_face_frames"] == len(TINY)
    tiny = rows[rows["input"].str.contains("tiny_")]
    assert len(tiny) == len(TINY) and (tiny["success"] == 0).all() and (tiny["face_id"] == -1).all()
    assert (rows[rows["input"].str.endswith("z_group.png")]["success"] == 1).sum() == samples.GROUP_FACES
    per_input = {Path(p["input"]).name: p["too_small_frames"] for p in summary["outputs"]["per_input"]}
    assert per_input == {"a_astronaut.png": 0, "z_group.png": 0, **{f"tiny_{h}x{w}.png": 1 for h, w in TINY}}
    printed = capsys.readouterr().out
    assert f"({len(TINY)} too small to search)" in printed and "too small for a face: " in printed


def test_rerun_into_the_same_out_is_refused_and_overwrite_replaces_the_earlier_run(run_dir, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(samples.astronaut()).save(d / "astronaut.png")
    Image.fromarray(samples.no_face_images()["coffee"]).save(d / "coffee.png")
    out = tmp_path / "out"
    assert _predict([d], run_dir, out, "--overlay") == 0
    (out / "notes.md").write_text("mine")
    first = (out / "predictions.csv").read_bytes()
    capsys.readouterr()
    assert _predict([d / "astronaut.png"], run_dir, out) == 2      # before the fix: silently mixed two runs
    err = capsys.readouterr().err
    assert "holds the outputs of an earlier predict run" in err and "--overwrite" in err
    assert (out / "predictions.csv").read_bytes() == first                      # nothing touched
    dead = _dead_pid()
    stale = [out / f".astronaut.csv.{dead}.abcdefgh.tmp", out / f".gone.csv.{dead}.zyxw_987.tmp",
             out / "overlay" / f".gone.png.{dead}.q1w2e3r4.tmp"]                # what kill -9 leaves behind
    for p in stale:
        p.write_text("half a file")
    assert _predict([d / "astronaut.png"], run_dir, out, "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.csv", "notes.md", "predictions.csv", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"] == 1 and summary["replaced_earlier_outputs"] == 6     # 2 CSVs, 2 PNGs, combined, summary
    assert len(pd.read_csv(out / "predictions.csv")) == 1


def test_a_killed_runs_temporaries_are_swept_by_the_next_run(run_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".astronaut.csv.{_dead_pid()}.abcdefgh.tmp"
    stale.write_text("input,frame\n")
    live = out / f".other.csv.{os.getpid()}.abcdefgh.tmp"                       # a live writer's: kept
    live.write_text("input,frame\n")
    Image.fromarray(samples.astronaut()).save(tmp_path / "astronaut.png")
    assert _predict([tmp_path / "astronaut.png"], run_dir, out) == 0             # a fresh out: no --overwrite
    assert not stale.exists() and live.exists()


def test_a_large_photo_is_detected_on_a_capped_copy_at_the_right_place():
    from au_ttt.predict.faces import FaceConfig, FaceFinder

    photo = samples.astronaut()                                                    # 512 px
    scale = 12
    big = np.asarray(Image.fromarray(photo).resize((512 * scale, 512 * scale), Image.BILINEAR))   # 6144 px
    finder = FaceFinder(FaceConfig("mtcnn", detect_size=2000))
    seen = []
    detect = finder.mtcnn.detect
    finder.mtcnn.detect = lambda imgs, *a, **k: (seen.append(np.shape(imgs)), detect(imgs, *a, **k))[1]
    small, large = finder([photo])[0], finder([big])[0]
    assert seen[1][:2] == (2000, 2000)                          # before the fix: the 6144² frame, 7.8 GB at 12k
    assert len(small) == len(large) == 1
    np.testing.assert_allclose(large[0].box / scale, small[0].box, atol=6)      # px of the 512 px photo
    err = np.abs(large[0].points / scale - small[0].points).mean()
    assert err < 2.0, err                                       # landmarks fitted in the full-size frame


def test_an_image_over_the_decode_limit_is_refused_before_decoding(run_dir, tmp_path, monkeypatch):
    from PIL import ImageFile

    Image.fromarray(samples.astronaut()).resize((1200, 1000)).save(tmp_path / "big.png")
    Image.fromarray(samples.astronaut()).save(tmp_path / "ok.png")
    loaded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: (loaded.append(im.size), real_load(im))[1])
    out = tmp_path / "out"
    assert _predict([tmp_path / "big.png", tmp_path / "ok.png"], run_dir, out, "--max-pixels", "1") == 1
    summary = json.loads((out / "summary.json").read_text())
    (bad,) = summary["unreadable"]
    assert bad["name"].endswith("big.png")
    assert "1200×1000 image (1.2 megapixels) is over the 1 MP decode limit" in bad["reason"]
    assert (1200, 1000) not in loaded and (512, 512) in loaded                  # never decoded
    assert summary["scored_inputs"] == 1


def test_runs_uri_without_a_tracking_store_leaves_no_mlflow_db(run_dir, tmp_path, monkeypatch, capsys):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(None)
    Image.fromarray(samples.astronaut()).save(tmp_path / "a.png")
    assert _predict([tmp_path / "a.png"], "runs:/0123456789abcdef/model", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "no MLflow tracking store is configured" in err and "--tracking-uri" in err and "MLFLOW_TRACKING_URI" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]        # before the fix: a new mlflow.db
    missing = tmp_path / "nowhere" / "mlflow.db"
    assert _predict([tmp_path / "a.png"], "runs:/0123456789abcdef/model", tmp_path / "out",
                    "--tracking-uri", f"sqlite:///{missing}") == 2
    assert "no MLflow store at" in capsys.readouterr().err and not missing.parent.exists()


def test_an_unreachable_tracking_server_fails_with_a_clear_message(tmp_path):
    with socket.socket() as s:                                  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Image.fromarray(samples.astronaut()).save(tmp_path / "a.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # a hang guard, not a speed bound: before the fix MLflow's 7 retries with backoff took over 200 s
    done = subprocess.run([sys.executable, "-m", "au_ttt.cli", "predict", str(tmp_path / "a.png"), "--model",
                           "runs:/0123456789abcdef/model", "--tracking-uri", f"http://127.0.0.1:{port}", "--out",
                           str(tmp_path / "out"), "--no-progress", "--device", "cpu"],
                          capture_output=True, text=True, timeout=150, cwd=tmp_path,
                          env={**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"cannot reach the MLflow tracking server at http://127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "out").exists()
