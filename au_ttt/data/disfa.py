"""DISFA reader: ``ActionUnit_Labels/SN###/SN###_au{N}.txt`` + decoded left-camera frames → index rows.

Format (CVI-SZU/ME-GraphAU tool/DISFA_image_label_process.py): one file per subject and AU,
one ``frame,intensity`` line per video frame, intensity 0–5; occurrence = intensity ≥ 2; AUs 1, 2, 4, 6,
9, 12, 25, 26. Line t (0-based) is video frame t and image ``SN###/{t}.jpg`` under the frames folder
written by ``au-ttt data frames`` (the frame number written in the file is not used, as in ME-GraphAU).
The sequence column is ``left`` (the camera). Rules for short files, missing files, frames beyond the
video, unknown subjects and bad files: :mod:`au_ttt.data.frame_index`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from au_ttt.data.frame_index import IndexReport, finalize_index, scan_images, subject_part
from au_ttt.data.protocol import DISFA_AUS, DISFA_OCCURRENCE_THRESHOLD
from au_ttt.data.video import read_marker
from au_ttt.errors import InputError

DATASET = "disfa"   # the index's dataset value (the plug-in: au_ttt/datasets/disfa.py)

__all__ = ["LABEL_DIR", "SEQUENCE", "label_path", "read_disfa", "read_intensity_file"]

LABEL_DIR = "ActionUnit_Labels"
SEQUENCE = "left"  # only the left camera is used (ME-GraphAU maintainer, issue #2)


def label_path(root: str | Path, subject: str, au: int) -> Path:
    return Path(root) / LABEL_DIR / subject / f"{subject}_au{au}.txt"


def read_intensity_file(path: Path) -> np.ndarray:
    """Intensities (0–5) in line order; a malformed line is an InputError naming file and line."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: unreadable label file ({err}); re-copy it from DISFA") from err
    values = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        try:
            value = int(fields[1]) if len(fields) == 2 else -1
        except ValueError:
            value = -1
        if not 0 <= value <= 5:
            raise InputError(f"{path}:{number}: expected 'frame,intensity' with intensity 0-5, got {line!r}; "
                             "re-copy the file from DISFA")
        values.append(value)
    return np.asarray(values, dtype=np.int8)


def _subject_labels(root: Path, subject: str, report: IndexReport) -> np.ndarray | None:
    """(frames, 8) int8 occurrence with -1 for missing files and short-file tails; None if no file exists."""
    paths = {au: label_path(root, subject, au) for au in DISFA_AUS}
    series = {au: read_intensity_file(p) for au, p in paths.items() if p.is_file()}
    if not series:
        return None
    n = max(len(v) for v in series.values())
    labels = np.full((n, len(DISFA_AUS)), -1, dtype=np.int8)
    for j, au in enumerate(DISFA_AUS):
        col = f"AU{au}"
        if au not in series:
            report.mark_unknown("missing_label_file", col, n, paths[au].name)
            continue
        values = series[au]
        labels[: len(values), j] = (values >= DISFA_OCCURRENCE_THRESHOLD).astype(np.int8)
        if len(values) < n:
            report.mark_unknown("short_label_file", col, n - len(values),
                                f"{subject}_au{au}.txt has {len(values)} of {n} lines")
    return labels


def read_disfa(root: str | Path, frames_root: str | Path, allow_unknown_subjects: bool = False,
               report: IndexReport | None = None, progress: bool = True) -> tuple[pd.DataFrame, IndexReport]:
    """All labelled DISFA frames that have a decoded image, as index rows."""
    root, frames_root = Path(root), Path(frames_root)
    report = report or IndexReport(DATASET)
    label_dir = root / LABEL_DIR
    if not label_dir.is_dir():
        raise InputError(f"{label_dir} not found; --root must be the DISFA folder that contains {LABEL_DIR}/")
    subjects = sorted(p.name for p in label_dir.iterdir() if p.is_dir())
    if not subjects:
        raise InputError(f"{label_dir} holds no SN### folders; check --root")
    if not frames_root.is_dir():
        raise InputError(f"frames folder {frames_root} not found; decode the videos first with "
                         f"`au-ttt data frames --root {root} --out {frames_root}`")
    parts = []
    for subject in tqdm(subjects, desc="DISFA subjects", unit="subject", disable=not progress):
        files = sorted((label_dir / subject).glob("*.txt"))
        source = files[0] if files else label_dir / subject
        part = subject_part(DATASET, subject, source, allow_unknown_subjects)
        if part is None:
            lengths = [len(read_intensity_file(p)) for p in files]
            report.exclude("unknown_subject", max(lengths, default=0), subject, subjects=1)
            continue
        labels = _subject_labels(root, subject, report)
        if labels is None:
            report.exclude("no_label_files", 0, f"{subject}: none of {subject}_au{{N}}.txt", subjects=1)
            continue
        parts.append(_subject_rows(subject, part, labels, frames_root / subject, report))
    return finalize_index([p for p in parts if len(p)], DATASET, report), report


def _subject_rows(subject: str, part: int, labels: np.ndarray, frame_dir: Path,
                  report: IndexReport) -> pd.DataFrame:
    n = len(labels)
    marker = read_marker(frame_dir)
    n_video = marker["frames"] if marker is not None else None
    t = np.arange(n)
    keep = np.ones(n, dtype=bool)
    if n_video is not None and n_video < n:
        report.exclude("beyond_video", n - n_video, f"{subject}: {n} label lines, video has {n_video} frames")
        keep[n_video:] = False
    present, empty = scan_images(frame_dir)
    has_image = np.array([f"{i}.jpg" in present for i in t], dtype=bool)
    is_empty = keep & np.array([f"{i}.jpg" in empty for i in t], dtype=bool)
    report.exclude_files("empty_image", [f"{subject}/{i}.jpg" for i in t[is_empty]])
    missing = keep & ~has_image & ~is_empty
    if missing.any():
        report.exclude("missing_image", int(missing.sum()), f"{subject}/{int(t[missing][0])}.jpg")
    keep &= has_image
    df = pd.DataFrame({"subject": subject, "sequence": SEQUENCE, "frame": t[keep],
                       "image": [f"{subject}/{i}.jpg" for i in t[keep]], "part": part})
    df[[f"AU{au}" for au in DISFA_AUS]] = labels[keep]
    return df
