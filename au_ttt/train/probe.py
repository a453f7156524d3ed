"""The HOG + logistic-regression probe as a same-protocol table row (``au-ttt probe``).

Why: ``au-ttt baseline`` (:mod:`au_ttt.data.baseline`) fits the probe on its own crops of every raw frame,
so its F1 is not paired with AU-TTT's: other frames, other crops. Here the probe reads exactly what a
training run reads — the frame index, the aligned crop store and the fold's subjects — through the
evaluation loader (centre crop, no augmentation: a closed-form fit has no epochs to augment), turns each
crop into greyscale (the demo models' input) and HOG (:func:`au_ttt.data.baseline.hog_features`, 9
orientations, 8 px cells), standardises on the training frames, fits one class-balanced logistic
regression per AU on the known labels and scores the test part at probability 0.5. It writes what
``au-ttt train`` writes for the tables — ``metrics.json`` (``epoch_policy: closed-form fit``) and
``predictions.parquet`` with each frame's subject — plus ``probe.npz`` (scaler and coefficients, loaded
with ``allow_pickle=False``) so that the fold's fit scores the other dataset for Table II like
``au-ttt evaluate`` scores a trained model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from au_ttt.data.protocol import AUS
from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write, atomic_write_json
from au_ttt.metrics import all_positive_f1, cross_domain_columns, f1_per_au
from au_ttt.train.data import DataPaths
from au_ttt.train.evaluate import write_predictions
from au_ttt.train.records import CrossMetrics, FoldMetrics, RunSpec

if TYPE_CHECKING:
    from au_ttt.settings import Settings

__all__ = ["PROBE_FILE", "PROBE_VARIANT", "ProbeFit", "probe_cross", "probe_fold"]

PROBE_VARIANT = "hog_lr"
PROBE_FILE = "probe.npz"
POLICY = "closed-form fit (no epochs)"
_C = 0.05  # inverse L2 strength, as `au-ttt baseline` (au_ttt/commands/baseline.py)


@dataclass(frozen=True)
class ProbeFit:
    """Standardiser + one logistic regression per AU; an AU with one training class predicts that class."""

    mean: np.ndarray       # (d,)
    scale: np.ndarray      # (d,)
    coef: np.ndarray       # (A, d)
    intercept: np.ndarray  # (A,)
    constant: np.ndarray   # (A,) NaN = fitted, else the one training class's probability (0 or 1)

    def probs(self, feats: np.ndarray) -> np.ndarray:
        z = (feats - self.mean) / self.scale
        p = 1.0 / (1.0 + np.exp(-(z @ self.coef.T + self.intercept)))
        return np.where(np.isnan(self.constant), p, self.constant).astype(np.float32)

    def save(self, path: Path, meta: dict[str, Any]) -> Path:
        arrays = {k: getattr(self, k) for k in ("mean", "scale", "coef", "intercept", "constant")}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> tuple[ProbeFit, dict[str, Any]]:
        if not path.is_file():
            raise InputError(f"{path}: not found; is {path.parent} an `au-ttt probe` fold directory?")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(*(z[k] for k in ("mean", "scale", "coef", "intercept", "constant"))), \
                    json.loads(str(z["meta"]))
        except (OSError, ValueError, KeyError) as err:
            raise InputError(f"{path}: not a probe file ({type(err).__name__}); rerun `au-ttt probe`") from None


def fit(feats: np.ndarray, labels: np.ndarray, c: float = _C) -> ProbeFit:
    """``labels`` (N, A) in {1, 0, −1 = unknown}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(feats)
    z = scaler.transform(feats)
    coef, intercept = np.zeros((labels.shape[1], z.shape[1])), np.zeros(labels.shape[1])
    constant = np.full(labels.shape[1], np.nan)
    for a in range(labels.shape[1]):
        known = labels[:, a] >= 0
        classes = np.unique(labels[known, a])
        if len(classes) < 2:
            constant[a] = float(classes[0]) if len(classes) else 0.0
            continue
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(z[known], labels[known, a])
        coef[a], intercept[a] = clf.coef_[0], clf.intercept_[0]
    return ProbeFit(scaler.mean_, np.where(scaler.scale_ > 0, scaler.scale_, 1.0), coef, intercept, constant)


def features(dataset, cell: int = 8) -> np.ndarray:
    """HOG (``cell``-pixel cells) of the greyscale crop of every frame of an AUFrameDataset, in dataset order."""
    from torch.utils.data import DataLoader

    from au_ttt.data.baseline import hog_features
    from au_ttt.model.au_ttt import GreyStandardize

    grey = GreyStandardize()
    out = []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=64, shuffle=False):
            out += [hog_features(g[0].numpy(), cell) for g in grey(batch["image"])]
    return np.stack(out)


def _frames(settings: Settings, paths: DataPaths, dataset: str, test_part: int, split: str, **kw):
    """A split through the evaluation transform (centre crop, no flip or jitter)."""
    from au_ttt.data.dataset import AUFrameDataset, split_rows
    from au_ttt.data.frame_index import load_index

    paths.check()
    index = load_index(paths.index)
    if sorted(index["dataset"].unique()) != [dataset]:
        raise InputError(f"{paths.index}: holds dataset(s) {sorted(index['dataset'].unique())}, not {dataset!r}")
    rows = None if split == "all" else split_rows(index, test_part, split)
    return AUFrameDataset(index, paths.crops, paths.heatmaps, rows=rows, train=False, cfg=settings.heatmaps,
                          aus=kw.get("label_aus") or AUS[dataset], mask_aus=kw.get("mask_aus"), random_crop=False)


def _labels(ds) -> np.ndarray:
    return np.where(ds.label_mask, ds.labels, -1).astype(np.int8)


def probe_fold(settings: Settings, paths: DataPaths, dataset: str, test_part: int, out_dir: str | Path,
               c: float = _C, cell: int = 8) -> FoldMetrics:
    """Fit on the fold's two training parts, score its test part; writes the run directory's files."""
    out_dir = Path(out_dir)
    (out_dir / FoldMetrics.FILE).unlink(missing_ok=True)
    train, test = (_frames(settings, paths, dataset, test_part, s) for s in ("train", "test"))
    model = fit(features(train, cell), _labels(train), c)
    probs, labels = model.probs(features(test, cell)), _labels(test)
    spec = RunSpec(dataset, test_part, PROBE_VARIANT)
    f1, floor = f1_per_au(labels, probs), all_positive_f1(labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / PROBE_FILE, {"dataset": dataset, "test_part": test_part, "aus": list(train.aus), "C": c,
                                      "cell": cell, "train_frames": len(train)})
    write_predictions(out_dir / "predictions.parquet", test, {"rows": test.rows, "probs": probs, "labels": labels},
                      test.aus)
    atomic_write_json(out_dir / "probe.json", {"spec": spec.name, "pretrained": None, "C": c,
                                               "features": f"HOG 9 orientations, {cell} px cells, 2x2 blocks",
                                               "train_frames": len(train), "test_frames": len(test)})
    metrics = FoldMetrics(run=spec.name, dataset=dataset, test_part=test_part, variant=PROBE_VARIANT,
                          aus=tuple(test.aus), f1={f"AU{a}": float(v) for a, v in zip(test.aus, f1, strict=True)},
                          f1_mean=float(f1.mean()), all_positive_f1_mean=float(floor.mean()),
                          test_frames=len(test), epoch_policy=POLICY)
    metrics.write(out_dir)
    return metrics


def probe_cross(settings: Settings, run_dir: str | Path, target: str, paths: DataPaths, out_dir: str | Path,
                target_part: int | None = None) -> CrossMetrics:
    """Score a probe fold's fit on the other dataset's shared AUs (entire target, or ``target_part``)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    (out_dir / CrossMetrics.FILE).unlink(missing_ok=True)
    model, meta = ProbeFit.load(run_dir / PROBE_FILE)
    source = meta["dataset"]
    if source == target:
        raise InputError(f"{run_dir}: a {source} probe; its within-domain score is already in its metrics.json")
    out_idx, label_idx, aus = cross_domain_columns(source, target)
    ds = _frames(settings, paths, target, target_part or 1, "test" if target_part else "all",
                 label_aus=AUS[target], mask_aus=AUS[source])
    probs, labels = model.probs(features(ds, int(meta.get("cell", 8))))[:, out_idx], _labels(ds)[:, label_idx]
    f1, floor = f1_per_au(labels, probs), all_positive_f1(labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.parquet", ds, {"rows": ds.rows, "probs": probs, "labels": labels}, aus)
    metrics = CrossMetrics(
        run=str(run_dir), source=source, target=target, aus=tuple(aus),
        test_set=f"{target} part {target_part} only (FG-Net)" if target_part else f"entire {target} dataset",
        f1={f"AU{a}": float(v) for a, v in zip(aus, f1, strict=True)}, f1_mean=float(f1.mean()),
        all_positive_f1_mean=float(floor.mean()), variant=PROBE_VARIANT, epoch_policy=POLICY,
        trained_on_parts=tuple(p for p in (1, 2, 3) if p != meta["test_part"]), test_frames=len(ds))
    metrics.write(out_dir)
    return metrics
