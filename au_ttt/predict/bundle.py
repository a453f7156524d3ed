"""Self-describing model bundles (``au-ttt export``) and the one loader ``predict --model`` uses.

A bundle is a folder::

    model.safetensors   the run's final weights, unchanged
    bundle.json         format, weights SHA-256, resolved model config, AU list and dataset, thresholds,
                        preprocessing (crop, heatmap/RoI, landmark and JPEG settings, input normalisation),
                        inference settings and provenance (git commit, data manifest hash, test-fold F1)
    README.md           a model card generated from bundle.json

A run directory is loaded through the very same record (:func:`record_from_run`), so ``--model RUN_DIR``
and ``--model BUNDLE`` cannot disagree. A bundle whose weights fail the checksum, whose weights file is not
a file of the bundle folder, or whose config does not build a model those weights fit exactly, is refused
with an :class:`InputError` naming the file; the fit is checked from the safetensors header against a model
built on the meta device, before the real model is allocated.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from au_ttt import __version__
from au_ttt.config import from_dict, to_dict
from au_ttt.data.align import AlignConfig
from au_ttt.data.heatmaps import HeatmapConfig
from au_ttt.data.landmarks import LandmarkConfig
from au_ttt.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from au_ttt.data.video import JPEG_QUALITY as VIDEO_FRAME_JPEG_QUALITY
from au_ttt.digests import file_digest as sha256_file  # the weights checksum (name kept for callers)
from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write_json, atomic_write_text, building_dir
from au_ttt.predict.mlflow_fetch import MLFLOW_SCHEMES, download_model
from au_ttt.predict.prepare import PreprocessSpec
from au_ttt.predict.runs import DECISION_THRESHOLD, TrainedRun, read_run

if TYPE_CHECKING:
    from au_ttt.model.config import ModelConfig

__all__ = ["BUNDLE_FILE", "FORMAT", "WEIGHTS_FILE", "LoadedModel", "export_bundle", "load_bundle", "load_model",
           "model_from_run", "record_from_run", "sha256_file"]

FORMAT, FORMAT_VERSION = "au-ttt-bundle", 1
BUNDLE_FILE, WEIGHTS_FILE, CARD_FILE = "bundle.json", "model.safetensors", "README.md"


@dataclass
class LoadedModel:
    """A model ready to score faces, with everything needed to prepare its input and read its output."""

    model: Any                    # AUTTT or a timm baseline (build_model), in eval mode
    aus: tuple[int, ...]
    dataset: str
    thresholds: np.ndarray        # (N_AU,) decision threshold per AU
    prep: PreprocessSpec
    landmarks: LandmarkConfig     # how training found its landmarks (the dlib detector's default upsampling)
    amp: str
    record: dict[str, Any]        # the bundle record (provenance, etc.)
    source: str                   # what was loaded, for the summary


def record_from_run(run: TrainedRun) -> dict[str, Any]:
    """The bundle.json content for a run directory."""
    info, m, tags = run.info, run.metrics, run.tags
    aus = [int(a) for a in info["aus"]]
    crops, heatmaps, landmarks = run.sections["crops"], run.sections["heatmaps"], run.sections["landmarks"]
    spec = info.get("spec", {})
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(run.weights), "bytes": run.weights.stat().st_size},
        "model": info["model"], "aus": aus, "dataset": spec.get("dataset"),
        "output": "per AU: sigmoid probability that the AU occurs in the frame (frame-level occurrence)",
        "thresholds": {f"AU{a}": DECISION_THRESHOLD for a in aus},
        "threshold_source": "the F1 threshold of training and evaluation (au_ttt.metrics.f1_per_au)",
        "preprocessing": {
            "crops": to_dict(crops), "heatmaps": to_dict(heatmaps), "landmarks": to_dict(landmarks),
            "mask_aus": aus, "crop_jpeg_quality": crops.jpeg_quality,
            "video_frame_jpeg_quality": VIDEO_FRAME_JPEG_QUALITY,
            "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                              "model_input_norm": info["model"].get("input_norm")},
            "settings_source": run.sections_source,
        },
        "inference": {"amp": info.get("train", {}).get("amp", "none"),
                      "batch_size": info.get("train", {}).get("batch_size", 32)},
        "provenance": {
            "run_name": m.get("run") or Path(run.run_dir).name, "spec": spec, "variant": spec.get("variant"),
            "git_commit": tags.get("git.commit", "unknown"), "git_dirty": tags.get("git.dirty", "unknown"),
            "config_hash": tags.get("config_hash", "unknown"), "data_manifest": tags.get("data_manifest", "unknown"),
            "data_manifest_hash": tags.get("data_manifest_hash", "unknown"), "mlflow_run_id": run.mlflow_run_id,
            "test_part": spec.get("test_part"), "test_frames": m.get("test_frames"),
            "train_frames": info.get("train_frames"), "f1_mean": m.get("f1_mean"), "f1": m.get("f1"),
            "all_positive_f1_mean": m.get("all_positive_f1_mean"), "epoch_policy": m.get("epoch_policy"),
            "exported_from": str(Path(run.run_dir).resolve()), "au_ttt_version": __version__,
            "exported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        },
    }


def _model_card(rec: dict[str, Any]) -> str:
    p, pre = rec["provenance"], rec["preprocessing"]
    f1 = p.get("f1") or {}
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in f1.items())
    f1_line = (f"{p['f1_mean']:.3f} (all-positive floor {p['all_positive_f1_mean']:.3f})"
               if isinstance(p.get("f1_mean"), float) else "not recorded")
    return f"""# AU-TTT model bundle: {p['run_name']}

Frame-level facial action unit occurrence detector ({rec['dataset']} AUs {', '.join(map(str, rec['aus']))}).
Output: {rec['output']}; an AU counts as present at probability ≥ its threshold (0.5 unless changed).

**Training data.** Data manifest `{p['data_manifest']}` (SHA-256 `{p['data_manifest_hash']}`). If that is
SynthAU (the project's embedded synthetic data), this model has never seen a real face: use it to check the
pipeline, not to measure anything. Models trained on BP4D/DISFA inherit those datasets' licence terms.

**Test fold:** part {p.get('test_part')}, {p.get('test_frames')} frames, last-epoch mean F1 {f1_line}.

| AU | F1 |
|---|---|
{rows}

**Input.** Faces found by the detector, 68 dlib landmarks, similarity alignment to a {pre['crops']['size']} px crop,
centre {pre['heatmaps']['input_size']} px crop, ImageNet normalisation (model input norm:
`{pre['normalisation']['model_input_norm']}`), FG-Net AU-centre RoI masks. `au-ttt predict --model <this folder>`
does all of it.

**Provenance.** git `{p['git_commit']}` (dirty: {p['git_dirty']}), config hash `{p['config_hash']}`,
MLflow run `{p['mlflow_run_id']}`, exported {p['exported_at']} by au-ttt {p['au_ttt_version']}.
Weights `{rec['weights']['file']}` SHA-256 `{rec['weights']['sha256']}`.
"""


def export_bundle(run_dir: str | Path, out: str | Path, config: str | Path | None = None,
                  overwrite: bool = False) -> Path:
    """Write the bundle of ``run_dir`` into ``out`` (atomically: the folder appears complete or not at all)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out}: exists; choose another --out or pass --overwrite")
    run = read_run(run_dir, config)
    rec = record_from_run(run)
    with building_dir(out) as tmp:
        shutil.copyfile(run.weights, tmp / WEIGHTS_FILE)
        if sha256_file(tmp / WEIGHTS_FILE) != rec["weights"]["sha256"]:
            raise InputError(f"{run.weights}: changed while it was copied; export again")
        atomic_write_json(tmp / BUNDLE_FILE, rec)
        atomic_write_text(tmp / CARD_FILE, _model_card(rec))
    return out


def _build(rec: dict[str, Any], weights: Path, source: str, model: Any = None) -> LoadedModel:
    """LoadedModel from a record; builds and strictly loads the model unless one is given."""
    from au_ttt.model.config import ModelConfig

    try:
        aus = tuple(int(a) for a in rec["aus"])
        pre = rec["preprocessing"]
        model_cfg = from_dict(ModelConfig, rec["model"], source=source, prefix="model.")
        prep = PreprocessSpec(
            crops=from_dict(AlignConfig, pre["crops"], source=source, prefix="preprocessing.crops."),
            heatmaps=from_dict(HeatmapConfig, pre["heatmaps"], source=source, prefix="preprocessing.heatmaps."),
            mask_aus=tuple(int(a) for a in pre["mask_aus"]), crop_jpeg_quality=pre["crop_jpeg_quality"],
            video_frame_jpeg_quality=pre["video_frame_jpeg_quality"],
            mean=tuple(pre["normalisation"]["mean"]), std=tuple(pre["normalisation"]["std"]))
        landmarks = from_dict(LandmarkConfig, pre["landmarks"], source=source, prefix="preprocessing.landmarks.")
        thresholds = np.array([float(rec["thresholds"][f"AU{a}"]) for a in aus])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{source}: malformed bundle record ({type(err).__name__}: {err}); export it again") from err
    prep.check(model_cfg.img_size, model_cfg.patch_size, source)
    if model is None:
        model = _strict_load(model_cfg, len(aus), weights, source)
    model.eval()
    return LoadedModel(model, aus, str(rec.get("dataset")), thresholds, prep, landmarks,
                       str(rec.get("inference", {}).get("amp", "none")), rec, source)


def _mismatch(source: str, detail: str) -> InputError:
    return InputError(f"{source}: its model config does not match its weights ({detail}); the bundle was edited "
                      "or assembled from different runs — export it again from the run directory")


def _check_shapes(model_cfg: ModelConfig, num_aus: int, weights: Path, source: str) -> None:
    """Refuse a record whose model would not fit the weights, before that model is allocated.

    The weights' names and shapes come from the safetensors header alone, the model's from a build on torch's
    meta device, so an edited record (``depth: 1000000000`` within the file's checksum) costs no memory.
    """
    from au_ttt.model.baselines import state_shapes
    from au_ttt.model.weights import read_shapes

    found = read_shapes(weights, "copy the bundle again or re-export it")
    expected = state_shapes(model_cfg, num_aus)
    shapes = [f"key '{k}' has shape {list(found[k])} in {weights.name}, {list(shape)} from the config"
              for k, shape in expected.items() if k in found and found[k] != shape]
    problems = shapes[:2] + ([f"{len(shapes) - 2} more shapes differ"] if len(shapes) > 2 else [])
    for keys, what in (([k for k in expected if k not in found], "lacks {n} key(s) the config implies"),
                       ([k for k in found if k not in expected], "has {n} key(s) the config does not imply")):
        if keys:
            problems.append(f"{weights.name} {what.format(n=len(keys))}, first '{keys[0]}'")
    if problems:
        raise _mismatch(source, "; ".join(problems))


def _strict_load(model_cfg: ModelConfig, num_aus: int, weights: Path, source: str) -> Any:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from au_ttt.model.baselines import build_model

    _check_shapes(model_cfg, num_aus, weights, source)
    model = build_model(model_cfg, num_aus)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise InputError(f"{weights}: not a readable safetensors file ({err})") from err
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[1:4]) or first[0]
        raise _mismatch(source, detail) from None
    return model


def _weights_path(bundle: Path, rec: dict[str, Any], rec_path: Path) -> Path:
    """The record's weights file: a plain file name that resolves inside the bundle folder, nothing else.

    A record may otherwise send the loader to any file of the machine (``/etc/passwd`` with its checksum).
    """
    entry = rec.get("weights")
    name = entry.get("file", WEIGHTS_FILE) if isinstance(entry, dict) else None
    fix = ("must be the name of a file inside the bundle folder (no folder part, no '..', no link leading out); "
           "export the bundle again")
    if not isinstance(name, str) or name in ("", ".", "..") or "\0" in name or Path(name).name != name:
        raise InputError(f"{rec_path}: weights.file {name!r} {fix}")
    weights = bundle / name
    root = bundle.resolve()
    if weights.resolve().parent != root:
        raise InputError(f"{rec_path}: weights.file {name!r} leads to {weights.resolve()}, outside {root}; it {fix}")
    return weights


def load_bundle(path: str | Path) -> LoadedModel:
    """Load and verify a bundle folder (checksum, config ↔ weights)."""
    path = Path(path)
    rec_path = path / BUNDLE_FILE
    if not rec_path.is_file():
        raise InputError(f"{path}: no {BUNDLE_FILE}; is it a folder written by `au-ttt export`?")
    try:
        rec = json.loads(rec_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{rec_path}: unreadable ({err}); export the bundle again") from err
    if rec.get("format") != FORMAT or rec.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{rec_path}: format {rec.get('format')!r} v{rec.get('format_version')!r}, expected "
                         f"{FORMAT!r} v{FORMAT_VERSION}; export it again with this au-ttt")
    weights = _weights_path(path, rec, rec_path)
    if not weights.is_file():
        raise InputError(f"{weights}: missing from the bundle; export it again")
    digest = sha256_file(weights)
    if digest != rec["weights"].get("sha256"):
        raise InputError(f"{weights}: checksum mismatch (SHA-256 {digest[:16]}…, bundle.json says "
                         f"{str(rec['weights'].get('sha256'))[:16]}…): the file is damaged or was replaced; "
                         "copy the bundle again or re-export it")
    return _build(rec, weights, str(rec_path))


def model_from_run(run_dir: str | Path, config: str | Path | None = None) -> LoadedModel:
    """A run directory through the same record a bundle holds (weights already checked by the run loader)."""
    run = read_run(run_dir, config)
    return _build(record_from_run(run), run.weights, str(Path(run_dir) / "run.json"), model=run.model)


def _mlflow_bundle(uri: str, tracking_uri: str | None) -> Path:
    """Local bundle folder inside an MLflow pyfunc model (downloaded if remote)."""
    local = download_model(uri, tracking_uri) if uri.startswith(MLFLOW_SCHEMES) else Path(uri)
    bundle = local / "artifacts" / "bundle"
    if not (bundle / BUNDLE_FILE).is_file():
        raise InputError(f"{uri}: not an AU-TTT MLflow model (no artifacts/bundle/{BUNDLE_FILE})")
    return bundle


def load_model(spec: str | Path, config: str | Path | None = None, tracking_uri: str | None = None) -> LoadedModel:
    """``--model``: a bundle folder, a run directory, or an MLflow model URI (runs:/…, models:/…)."""
    text = str(spec)
    if text.startswith(MLFLOW_SCHEMES):
        return load_bundle(_mlflow_bundle(text, tracking_uri))
    path = Path(text)
    if (path / BUNDLE_FILE).is_file():
        return load_bundle(path)
    if (path / "run.json").is_file():
        return model_from_run(path, config)
    if (path / "MLmodel").is_file():
        return load_bundle(_mlflow_bundle(text, tracking_uri))
    raise InputError(f"{spec}: not a model: give a bundle folder (`au-ttt export`), a run directory "
                     "(`au-ttt train --out`) or an MLflow model URI such as runs:/<run id>/model")
