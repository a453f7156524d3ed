"""`au-ttt predict` gives a frame the probabilities `au-ttt evaluate` gives it through the training pipeline.

SynthAU at its smallest, through the real commands: DISFA-format videos → `data frames` → index →
landmarks → crops → heatmaps → `evaluate`, and BP4D-format JPEG frames the same way. `predict` then reads
the raw inputs (the .avi files, the frame JPEGs) with the same landmarks — the `provided` ones passed as a
landmark file, or the `dlib` backend reproduced by `--detector dlib` — and must match per frame. The model is
a random tiny AU-TTT with enlarged heads (tests/predict_support.py), so probabilities spread over (0, 1).
A control shows the comparison can fail: without training's JPEG round trips the same frames differ.
"""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from predict_support import make_run

from au_ttt.cli import main
from au_ttt.data.protocol import AUS

TOL = 2e-5   # float32 batch-size effects (evaluate and predict batch differently): measured ≤ 7e-7


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the tests compare scores across runs


def cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Tiny SynthAU plus the project config with the dlib variant of the landmark backend."""
    tmp = tmp_path_factory.mktemp("equiv")
    assert cli("synth", "--out", tmp / "synth", "--seed", 3, "--subjects-per-part", 1, "--bp4d-tasks", 1,
               "--bp4d-frames", 5, "--disfa-frames", 6, "--no-progress") == 0
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    configs = {}
    for backend in ("provided", "dlib"):
        cfg["landmarks"]["backend"] = backend
        configs[backend] = tmp / f"{backend}.yaml"
        configs[backend].write_text(yaml.safe_dump(cfg))
    return tmp, configs


def _chain(tmp: Path, config: Path, dataset: str, backend: str) -> dict[str, Path]:
    """index → landmarks → crops → heatmaps for one dataset; returns the paths."""
    root = tmp / "synth" / ("BP4D" if dataset == "bp4d" else "DISFA")
    d = tmp / f"{dataset}-{backend}"
    index_args = ["--root", root]
    if dataset == "disfa":
        if not (tmp / "disfa_frames").exists():
            assert cli("data", "frames", "--root", root, "--out", tmp / "disfa_frames", "--no-progress") == 0
        index_args += ["--frames", tmp / "disfa_frames"]
    assert cli("data", "index", "--dataset", dataset, *index_args, "--out", d / "index.parquet", "--no-progress") == 0
    lm_args = ["--dataset-root", root] if backend == "provided" else []
    assert cli("landmarks", "--config", config, "--backend", backend, "--index", d / "index.parquet", *lm_args,
               "--out", d / "landmarks.npz", "--no-progress") == 0
    assert cli("crops", "--config", config, "--index", d / "index.parquet", "--landmarks", d / "landmarks.npz",
               "--out", d / "crops", "--no-progress") == 0
    assert cli("heatmaps", "--config", config, "--index", d / "index.parquet", "--crops", d / "crops",
               "--out", d / "heatmaps", "--no-progress") == 0
    return {"dir": d, "root": root, "index": d / "index.parquet", "landmarks": d / "landmarks.npz",
            "crops": d / "crops", "heatmaps": d / "heatmaps"}


def _evaluate(config: Path, run: Path, dataset: str, chain: dict[str, Path]) -> pd.DataFrame:
    """evaluate's per-frame probabilities, with the index columns of each row."""
    out = chain["dir"] / "eval"
    assert cli("evaluate", "--config", config, "--run", run, "--dataset", dataset, "--index", chain["index"],
               "--crops", chain["crops"], "--heatmaps", chain["heatmaps"], "--out", out, "--device", "cpu") == 0
    pred = pd.read_parquet(out / "predictions.parquet")
    index = pd.read_parquet(chain["index"])
    for col in ("subject", "frame", "image"):
        pred[col] = index[col].to_numpy()[pred["row"]]
    return pred


def _landmark_csv(chain: dict[str, Path], input_of_row, path: Path) -> Path:
    """The training landmarks as a predict landmark file (input, frame, x_0…x_67, y_0…y_67)."""
    index = pd.read_parquet(chain["index"])
    with np.load(chain["landmarks"]) as z:
        points, success = z["points"], z["success"]
    table = pd.DataFrame(np.concatenate([points[:, :, 0], points[:, :, 1]], axis=1),
                         columns=[f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)])
    inputs, frames = zip(*(input_of_row(r) for r in index.itertuples()), strict=True)
    table.insert(0, "frame", frames)
    table.insert(0, "input", [str(p) for p in inputs])
    table[success].to_csv(path, index=False)
    return path


def _compare(evaluated: pd.DataFrame, predicted: pd.DataFrame, key, aus) -> float:
    merged = evaluated.merge(predicted, on=key, validate="one_to_one")
    assert len(merged) == len(evaluated) > 0
    diff = max(float(np.abs(merged[f"prob_AU{a}"] - merged[f"AU{a:02d}_p"]).max()) for a in aus)
    spread = float(np.std(merged[[f"AU{a:02d}_p" for a in aus]].to_numpy()))
    assert spread > 0.1, "the model's outputs barely vary: the comparison would prove nothing"
    return diff


@pytest.fixture(scope="module")
def disfa(synth):
    """The DISFA-format chain, a run, evaluate's scores and the training landmarks as a landmark file."""
    tmp, configs = synth
    chain = _chain(tmp, configs["provided"], "disfa", "provided")
    run = make_run(tmp / "run-disfa", configs["provided"], "disfa")
    evaluated = _evaluate(configs["provided"], run, "disfa", chain)
    videos = chain["root"] / "Videos_LeftCamera"
    lm = _landmark_csv(chain, lambda r: (videos / f"LeftVideo{r.subject}_comp.avi", r.frame), tmp / "disfa_lm.csv")
    return {"tmp": tmp, "run": run, "evaluated": evaluated, "videos": videos, "landmarks": lm}


def test_predict_on_disfa_videos_equals_evaluate(disfa):
    out = disfa["tmp"] / "predict-disfa"
    assert cli("predict", disfa["videos"], "--model", disfa["run"], "--out", out, "--landmarks", disfa["landmarks"],
               "--no-progress", "--device", "cpu") == 0
    predicted = pd.read_csv(out / "predictions.csv").copy()   # one block: adding key columns stays cheap
    assert (predicted["success"] == 1).all() and len(predicted) == 3 * 6       # every frame of the 3 videos
    predicted["subject"] = predicted["input"].str.extract(r"LeftVideo(SN\d{3})_comp")[0]
    assert _compare(disfa["evaluated"], predicted, ["subject", "frame"], AUS["disfa"]) < TOL


def test_predict_on_bp4d_frames_equals_evaluate(synth):
    tmp, configs = synth
    chain = _chain(tmp, configs["provided"], "bp4d", "provided")
    run = make_run(tmp / "run-bp4d", configs["provided"], "bp4d", seed=1)
    evaluated = _evaluate(configs["provided"], run, "bp4d", chain)
    lm = _landmark_csv(chain, lambda r: (chain["root"] / r.image, 0), tmp / "bp4d_lm.csv")
    listing = tmp / "bp4d_frames.txt"
    listing.write_text("".join(f"{chain['root'] / im}\n" for im in evaluated["image"]))
    out = tmp / "predict-bp4d"
    assert cli("predict", listing, "--model", run, "--out", out, "--landmarks", lm, "--no-progress",
               "--batch", 4) == 0
    predicted = pd.read_csv(out / "predictions.csv").copy()   # one block: adding key columns stays cheap
    predicted["image"] = [str(Path(p).relative_to(chain["root"])) for p in predicted["input"]]
    assert _compare(evaluated, predicted, ["image"], AUS["bp4d"]) < TOL


def test_dlib_detector_reproduces_the_dlib_landmark_backend(synth):
    """No landmark file: `--detector dlib` finds the faces itself, as `landmarks --backend dlib` did."""
    tmp, configs = synth
    chain = _chain(tmp, configs["dlib"], "bp4d", "dlib")
    run = make_run(tmp / "run-bp4d-dlib", configs["dlib"], "bp4d", seed=2)
    evaluated = _evaluate(configs["dlib"], run, "bp4d", chain)
    frames = tmp / "bp4d-test-frames"
    for im in evaluated["image"]:
        (frames / im).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(chain["root"] / im, frames / im)
    out = tmp / "predict-dlib"
    assert cli("predict", frames, "--model", run, "--out", out, "--detector", "dlib", "--no-progress") == 0
    predicted = pd.read_csv(out / "predictions.csv").copy()   # one block: adding key columns stays cheap
    best = predicted.sort_values("confidence").groupby("input").tail(1).copy()   # DlibBackend keeps the best box
    best["image"] = [str(Path(p).relative_to(frames)) for p in best["input"]]
    with np.load(chain["landmarks"]) as z:
        stored = z["points"][evaluated["row"].to_numpy()]
    merged = evaluated[["image"]].merge(best, on="image", validate="one_to_one")
    xs = merged[[f"x_{i}" for i in range(68)]].to_numpy()
    np.testing.assert_allclose(xs, stored[:, :, 0], atol=1e-3)                 # identical landmarks
    assert _compare(evaluated, best, ["image"], AUS["bp4d"]) < TOL


def test_without_the_training_jpeg_round_trips_the_scores_differ(disfa):
    """Control: the check above is sensitive to exactly the storage steps predict repeats."""
    from au_ttt.predict.bundle import load_model
    from au_ttt.predict.job import PredictOptions, run_predict

    tmp, run = disfa["tmp"], disfa["run"]
    subject = disfa["evaluated"]["subject"].iloc[0]          # a subject of the evaluated test part
    video = disfa["videos"] / f"LeftVideo{subject}_comp.avi"
    opts = PredictOptions(landmarks=disfa["landmarks"], progress=False, device="cpu")
    cols = [f"AU{a:02d}_p" for a in AUS["disfa"]]
    scores = {}
    for name, change in (("as trained", {}), ("raw frames", {"video_frame_jpeg_quality": None}),
                         ("raw crops", {"crop_jpeg_quality": None})):
        model = load_model(run)
        model.prep = dataclasses.replace(model.prep, **change)
        run_predict([str(video)], model, tmp / "control" / name.replace(" ", "-"), opts)
        scores[name] = pd.read_csv(tmp / "control" / name.replace(" ", "-") / f"{video.stem}.csv")[cols]
    ev = disfa["evaluated"]
    ev = ev[ev["subject"] == subject].sort_values("frame")
    reference = ev[[f"prob_AU{a}" for a in AUS["disfa"]]].to_numpy()
    rows = ev["frame"].to_numpy()
    assert np.abs(scores["as trained"].to_numpy()[rows] - reference).max() < TOL
    for name in ("raw frames", "raw crops"):
        assert np.abs(scores[name].to_numpy()[rows] - reference).max() > 100 * TOL, name
