"""BP4D reader: ``AUCoding/AU_OCC/{subject}_{task}.csv`` + ``{subject}/{task}/{frame}.jpg`` → index rows.

Format (CVI-SZU/ME-GraphAU tool/BP4D_image_label_process.py): one CSV per subject and task with
a header row; the first column is the frame number, the others are named by AU number ('1', '2', …, more
AUs than the 12 used). Values are 0, 1 or 9 (unknown → -1). Frame images are named by frame number
(``F001/T1/2440.jpg``, as in ME-GraphAU's lists); a zero-padded copy (``02440.jpg``) is read too, and the
index's ``image`` column names the file found (:func:`frame_image_names`). They live under the image root
(``--frames``, default the BP4D root). What happens to missing images, missing AU columns, unknown subjects
and bad files is set out in :mod:`au_ttt.data.frame_index`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from au_ttt.data.frame_index import (
    IndexReport,
    finalize_index,
    frame_image_names,
    naming_hint,
    scan_images,
    subject_part,
)
from au_ttt.data.protocol import BP4D_AUS
from au_ttt.errors import InputError

DATASET = "bp4d"   # the index's dataset value (the plug-in: au_ttt/datasets/bp4d.py)

__all__ = ["LABEL_DIR", "read_bp4d", "read_occurrence_csv"]

LABEL_DIR = Path("AUCoding") / "AU_OCC"
_NAME = re.compile(r"^(?P<subject>[A-Za-z]+\d+)_(?P<task>T\d+)\.csv$")
_UNKNOWN = 9  # BP4D's "occurrence unknown" code


def read_occurrence_csv(path: Path) -> pd.DataFrame:
    """Frame-indexed 0/1/9 table of one sequence; any parse problem is an InputError naming the file."""
    try:
        table = pd.read_csv(path, header=0, index_col=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{path}: unreadable AU occurrence CSV ({err}); re-copy it from the BP4D "
                         "AUCoding/AU_OCC folder") from err
    table.columns = [str(c).strip() for c in table.columns]
    if not pd.api.types.is_integer_dtype(table.index) or table.index.has_duplicates:
        raise InputError(f"{path}: the first column must hold unique integer frame numbers; re-copy the file")
    return table


def _read_sequence(path: Path, subject: str, task: str, part: int, images: tuple[set[str], set[str]],
                   report: IndexReport) -> pd.DataFrame | None:
    table = read_occurrence_csv(path)
    n = len(table)
    labels = np.full((n, len(BP4D_AUS)), -1, dtype=np.int8)
    for j, au in enumerate(BP4D_AUS):
        col = f"AU{au}"
        if str(au) not in table.columns:
            report.mark_unknown("missing_label_file", col, n, f"{path.name} has no column '{au}'")
            continue
        values = table[str(au)].to_numpy()
        bad = ~np.isin(values, (0, 1, _UNKNOWN))
        if bad.any():
            frame = table.index[np.argmax(bad)]
            raise InputError(f"{path}: AU {au} has value {values[np.argmax(bad)]} at frame {frame}; BP4D "
                             "occurrence labels are 0, 1 or 9 — re-copy the file")
        unknown = values == _UNKNOWN
        if unknown.any():
            first = table.index[unknown][0]
            report.mark_unknown("label_9", col, int(unknown.sum()), f"{subject}/{task}/{first}")
        labels[:, j] = np.where(unknown, -1, values).astype(np.int8)
    frames = table.index.to_numpy()
    present, empty = images
    names = np.array(frame_image_names(frames, present), dtype=object)
    empty_names = frame_image_names(frames, empty)
    has_image = np.array([n is not None for n in names], dtype=bool)
    is_empty = np.array([n is not None for n in empty_names], dtype=bool) & ~has_image
    report.exclude_files("empty_image", [f"{subject}/{task}/{n}" for n, e in zip(empty_names, is_empty,
                                                                                  strict=True) if e])
    missing = ~has_image & ~is_empty
    if missing.any():
        first = frames[missing][0]
        hint = "" if has_image.any() or not present else f" ({naming_hint(present, frames)})"
        report.exclude("missing_image", int(missing.sum()), f"{subject}/{task}/{first}.jpg{hint}")
    if not has_image.any():
        return None
    df = pd.DataFrame({"subject": subject, "sequence": task, "frame": frames[has_image],
                       "image": [f"{subject}/{task}/{n}" for n in names[has_image]], "part": part})
    df[[f"AU{au}" for au in BP4D_AUS]] = labels[has_image]
    return df


def read_bp4d(root: str | Path, frames_root: str | Path | None = None, allow_unknown_subjects: bool = False,
              report: IndexReport | None = None, progress: bool = True) -> tuple[pd.DataFrame, IndexReport]:
    """All AU-coded BP4D frames with an image, as index rows (see :mod:`au_ttt.data.frame_index`)."""
    root = Path(root)
    image_root = Path(frames_root) if frames_root is not None else root
    report = report or IndexReport(DATASET)
    label_dir = root / LABEL_DIR
    if not label_dir.is_dir():
        raise InputError(f"{label_dir} not found; --root must be the BP4D folder that contains {LABEL_DIR}/")
    files = sorted(label_dir.glob("*.csv"))
    if not files:
        raise InputError(f"{label_dir} holds no *.csv AU occurrence files; check --root")
    parts = []
    for path in tqdm(files, desc="BP4D sequences", unit="csv", disable=not progress):
        match = _NAME.match(path.name)
        if match is None:
            raise InputError(f"{path}: name is not {{subject}}_{{task}}.csv (e.g. F001_T1.csv); rename or "
                             "remove it")
        subject, task = match["subject"], match["task"]
        part = subject_part(DATASET, subject, path, allow_unknown_subjects)
        if part is None:
            report.exclude("unknown_subject", len(read_occurrence_csv(path)), path.name, sequences=1)
            continue
        seq = _read_sequence(path, subject, task, part, scan_images(image_root / subject / task), report)
        if seq is not None:
            parts.append(seq)
    return finalize_index(parts, DATASET, report), report
