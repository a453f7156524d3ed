"""A classical baseline that says whether a BP4D/DISFA-format dataset is learnable: HOG + logistic regression.

Pipeline: a 64×64 grey face crop from the shipped landmarks (similarity transform from the eye centres and
the mouth centre) → HOG (skimage) → standardise → one logistic regression per AU (class-balanced) →
occurrence at probability 0.5. Evaluation: subject-exclusive 3-fold over the published parts (train on two,
test on the third; folds named by test part), per-AU F1 over each test part, averaged
over the three folds (JAA-Net practice), against the all-positive predictor on the same
test parts; and cross-domain: train on all of one dataset, test on all of the other on AUs 1, 2, 4, 6, 12
(FG-Net's cross-domain setting scores the same AUs; FG-Net tests on the target's part 1 only, we use the whole target).

Labels are read straight from the label files (BP4D CSV, DISFA intensity ≥ 2), frames from the JPEGs and
the left-camera AVI, landmarks through :mod:`au_ttt.data.landmark_files`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from au_ttt.data.bp4d import DATASET as BP4D
from au_ttt.data.disfa import DATASET as DISFA
from au_ttt.data.images import opened_video
from au_ttt.data.landmark_files import read_bp4d_landmarks, read_disfa_landmarks
from au_ttt.data.protocol import AUS, CROSS_DOMAIN_AUS, DISFA_OCCURRENCE_THRESHOLD, part_of_subject, train_parts
from au_ttt.errors import InputError

__all__ = ["CROP", "Samples", "baseline_report", "crop_face", "cross_domain", "hog_features", "load_bp4d",
           "load_disfa", "run_baseline", "within_dataset"]

log = logging.getLogger(__name__)
CROP = 64   # crop side in pixels


@dataclass(frozen=True)
class Samples:
    """Features, labels (1/0, −1 = unknown) and the part of each frame of one dataset."""

    dataset: str
    features: np.ndarray   # (n, d) float32
    labels: np.ndarray     # (n, n_aus) int8, columns in AUS[dataset] order
    parts: np.ndarray      # (n,) int
    skipped: int           # frames without landmarks or image (counted, reported)


def crop_face(img: np.ndarray, pts68: np.ndarray, size: int = CROP) -> np.ndarray:
    """Grey ``size``² crop: eyes level, eye-mid→mouth distance = 0.36·size, centred between them."""
    eye_l, eye_r = np.nanmean(pts68[36:42], 0), np.nanmean(pts68[42:48], 0)
    mouth = np.nanmean(pts68[48:68], 0)
    eye_mid = (eye_l + eye_r) / 2
    dist = np.linalg.norm(mouth - eye_mid)
    angle = np.degrees(np.arctan2(eye_r[1] - eye_l[1], eye_r[0] - eye_l[0]))
    centre = eye_mid + 0.4 * (mouth - eye_mid)
    mat = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, 0.36 * size / max(dist, 1e-6))
    mat[:, 2] += size / 2 - centre
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    return cv2.warpAffine(grey, mat, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def hog_features(crop: np.ndarray, cell: int = 8) -> np.ndarray:
    """HOG, 9 orientations, ``cell``-pixel cells, 2×2-cell blocks (``cell`` 16 = the demo models' patch grid)."""
    from skimage.feature import hog

    return hog(crop, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2)).astype(np.float32)


def load_bp4d(root: str | Path, progress: bool = True) -> Samples:
    """Every coded frame of ``root/AUCoding/AU_OCC/*.csv`` with its crop features."""
    root = Path(root)
    csvs = sorted((root / "AUCoding" / "AU_OCC").glob("*_*.csv"))
    if not csvs:
        raise InputError(f"no BP4D label files in {root / 'AUCoding' / 'AU_OCC'}; point at a BP4D-format root")
    cols = [str(au) for au in AUS[BP4D]]
    feats, labels, parts, skipped = [], [], [], 0
    for csv in tqdm(csvs, desc="BP4D frames", unit="seq", disable=not progress):
        subject, task = csv.stem.split("_", 1)
        df = pd.read_csv(csv, header=0, index_col=0)
        df.columns = df.columns.astype(str)
        if missing := [c for c in cols if c not in df.columns]:
            raise InputError(f"{csv} lacks AU columns {missing}; expected a BP4D AU_OCC file")
        lms = read_bp4d_landmarks(root, subject, task)
        part = part_of_subject(BP4D, subject)
        for frame, row in df[cols].iterrows():
            img = cv2.imread(str(root / subject / task / f"{int(frame)}.jpg"))
            if img is None or int(frame) not in lms:
                skipped += 1
                continue
            feats.append(hog_features(crop_face(img, lms[int(frame)])))
            labels.append(np.where(row.to_numpy() == 9, -1, row.to_numpy()))
            parts.append(part)
    return Samples(BP4D, np.stack(feats), np.asarray(labels, np.int8), np.asarray(parts), skipped)


def load_disfa(root: str | Path, progress: bool = True) -> Samples:
    """Every frame of each ``ActionUnit_Labels/SN*`` subject: line t ↔ decoded left-camera frame t."""
    root = Path(root)
    subjects = sorted(p.name for p in (root / "ActionUnit_Labels").glob("SN*") if p.is_dir())
    if not subjects:
        raise InputError(f"no DISFA subjects in {root / 'ActionUnit_Labels'}; point at a DISFA-format root")
    feats, labels, parts, skipped = [], [], [], 0
    for subject in tqdm(subjects, desc="DISFA videos", unit="video", disable=not progress):
        occ = np.stack([_disfa_occurrence(root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt")
                        for au in AUS[DISFA]], 1)
        lms = read_disfa_landmarks(root, subject)
        video = root / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi"
        part = part_of_subject(DISFA, subject)
        with opened_video(video, f"DISFA needs Videos_LeftCamera/LeftVideo{subject}_comp.avi") as cap:
            for t in range(len(occ)):
                ok, img = cap.read()
                if not ok or t not in lms:
                    skipped += 1
                    continue
                feats.append(hog_features(crop_face(img, lms[t])))
                labels.append(occ[t])
                parts.append(part)
    return Samples(DISFA, np.stack(feats), np.asarray(labels, np.int8), np.asarray(parts), skipped)


def _disfa_occurrence(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"DISFA label file {path} not found (expected ActionUnit_Labels/SN###/SN###_au{{N}}.txt)")
    values = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)[:, 1]
    return (values >= DISFA_OCCURRENCE_THRESHOLD).astype(np.int8)


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp = int(((pred == 1) & (y == 1)).sum())
    fp, fn = int(((pred == 1) & (y == 0)).sum()), int(((pred == 0) & (y == 1)).sum())
    return 2 * tp / max(2 * tp + fp + fn, 1)


def _fit_predict(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, c: float) -> np.ndarray:
    """Logistic regression on known labels; a single-class training set predicts that class."""
    from sklearn.linear_model import LogisticRegression

    known = y_tr >= 0
    classes = np.unique(y_tr[known])
    if len(classes) < 2:
        return np.full(len(x_te), int(classes[0]) if len(classes) else 0)
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    clf.fit(x_tr[known], y_tr[known])
    return (clf.predict_proba(x_te)[:, 1] >= 0.5).astype(np.int8)


def _scores(x_tr, y_tr, x_te, y_te, c: float) -> tuple[list[float], list[float]]:
    """Per-AU F1 of the model and of all-positive on the known test labels."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    model, allpos = [], []
    for j in range(y_tr.shape[1]):
        known = y_te[:, j] >= 0
        pred = _fit_predict(x_tr, y_tr[:, j], x_te, c)
        model.append(_f1(y_te[known, j], pred[known]))
        allpos.append(_f1(y_te[known, j], np.ones(int(known.sum()), np.int8)))
    return model, allpos


def within_dataset(s: Samples, c: float = 0.05) -> dict:
    """Subject-exclusive 3-fold: per-AU F1 (%) averaged over the test parts, model and all-positive."""
    folds = {}
    for test in (1, 2, 3):
        tr, te = np.isin(s.parts, train_parts(test)), s.parts == test
        if not tr.any() or not te.any():
            raise InputError(f"{s.dataset.upper()}: part {test} or its training parts have no frames; "
                             "generate at least one subject per part")
        folds[test] = _scores(s.features[tr], s.labels[tr], s.features[te], s.labels[te], c)
    model = np.mean([folds[k][0] for k in folds], 0) * 100
    allpos = np.mean([folds[k][1] for k in folds], 0) * 100
    return _table(AUS[s.dataset], model, allpos, frames=len(s.labels), skipped=s.skipped)


def cross_domain(src: Samples, dst: Samples, c: float = 0.05) -> dict:
    """Train on all of ``src``, test on all of ``dst``, on the shared AUs 1, 2, 4, 6, 12."""
    i_src = [AUS[src.dataset].index(au) for au in CROSS_DOMAIN_AUS]
    i_dst = [AUS[dst.dataset].index(au) for au in CROSS_DOMAIN_AUS]
    model, allpos = _scores(src.features, src.labels[:, i_src], dst.features, dst.labels[:, i_dst], c)
    return _table(CROSS_DOMAIN_AUS, np.array(model) * 100, np.array(allpos) * 100, frames=len(dst.labels))


def run_baseline(bp4d: Samples, disfa: Samples, c: float = 0.05) -> dict:
    """Within-dataset 3-fold and cross-domain F1 (%, per AU and mean) for the model and all-positive.

    Each cross-domain row also carries ``within_target_same_aus``: the target's own 3-fold mean F1 on the
    same five AUs, the number the cross-domain result should fall short of.
    """
    out: dict = {"within": {s.dataset: within_dataset(s, c) for s in (bp4d, disfa)}, "cross": {}}
    for src, dst in ((bp4d, disfa), (disfa, bp4d)):
        row = cross_domain(src, dst, c)
        within = [out["within"][dst.dataset]["model"][f"AU{au}"] for au in CROSS_DOMAIN_AUS]
        row["within_target_same_aus"] = round(float(np.mean(within)), 1)
        out["cross"][f"{src.dataset}->{dst.dataset}"] = row
    return out


def _table(aus, model: np.ndarray, allpos: np.ndarray, **extra) -> dict:
    return {"model": {f"AU{a}": round(float(v), 1) for a, v in zip(aus, model, strict=True)},
            "all_positive": {f"AU{a}": round(float(v), 1) for a, v in zip(aus, allpos, strict=True)},
            "mean_model": round(float(np.mean(model)), 1), "mean_all_positive": round(float(np.mean(allpos)), 1),
            **extra}


def baseline_report(result: dict) -> str:
    """Markdown tables of a :func:`run_baseline` result."""
    lines = []
    for ds, row in result["within"].items():
        aus = list(row["model"])
        lines += [f"**{ds.upper()}-format, subject-exclusive 3-fold** ({row['frames']} frames, F1 %)", "",
                  "| | " + " | ".join(aus) + " | mean |", "|---" * (len(aus) + 2) + "|",
                  "| HOG + LR | " + " | ".join(f"{row['model'][a]:.1f}" for a in aus) + f" | {row['mean_model']:.1f} |",
                  "| all-positive | " + " | ".join(f"{row['all_positive'][a]:.1f}" for a in aus)
                  + f" | {row['mean_all_positive']:.1f} |", ""]
    aus = [f"AU{a}" for a in CROSS_DOMAIN_AUS]
    lines += ["**Cross-domain** (train on all source frames, test on all target frames, F1 %)", "",
              "| source → target | " + " | ".join(aus) + " | mean | all-positive mean | within-target mean |",
              "|---" * (len(aus) + 4) + "|"]
    for name, row in result["cross"].items():
        lines.append(f"| {name.replace('->', ' → ')} | " + " | ".join(f"{row['model'][a]:.1f}" for a in aus)
                     + f" | {row['mean_model']:.1f} | {row['mean_all_positive']:.1f} | "
                     f"{row['within_target_same_aus']:.1f} |")
    return "\n".join(lines) + "\n"
