"""THE FRAME INDEX: one row per labelled frame of BP4D or DISFA, plus its report and the three folds.

Columns: ``dataset, subject, sequence, frame, image, part`` and one int8 column per AU (``AU1, AU2, …``)
holding 1 (present), 0 (absent) or -1 (unknown/missing). ``image`` is relative to the *image root*, which
is stored in the parquet metadata (key ``au_ttt``) and in the report JSON, and put in ``df.attrs`` by
:func:`load_index`.

Folds are named by their test part (1, 2, 3; parts as in CVI-SZU/ME-GraphAU tool/*_image_label_process.py). The
two published numberings map to test
parts as follows — ME-GraphAU/MDHR/JAA-Net fold k: 1→part 3, 2→part 2, 3→part 1; FG-Net fold k
(``labels/k/test.csv``): 0→part 1, 1→part 2, 2→part 3. ``folds.json`` records both for every fold.

Occurrence rate r_i = frames with label 1 / frames with a known label (0 or 1) of AU i, over the TRAINING
parts only; class weight w_i = N·(1/r_i)/Σ_j(1/r_j) (ME-GraphAU tool/*_calculate_AU_class_weights.py, PyTorch-JAANet
dataset/write_AU_weight.py). With no
unknown labels this is exactly ME-GraphAU's r_i = positives / training frames. A zero or undefined rate
raises an InputError naming AU and fold (:func:`class_weights`); ``folds.json`` then stores null weights
and the message for that fold, and the index report lists it under ``warnings``.

Rules for imperfect data (every case is counted in ``index.report.json`` and printed; none is silent):

- frame image missing → row excluded (``missing_image``);
- frame image of zero bytes → row excluded (``empty_image``), every such file named under
  ``excluded_images`` in the report. This costs one ``stat`` per file while listing each folder once
  (:func:`scan_images`), and it is the only damage that can be seen without decoding: a zero-byte file
  is as absent as a missing one. Truncated or non-image files need a full decode, which the ``landmarks``
  and ``crops`` stages do anyway (:func:`au_ttt.data.images.read_image`); they exclude and name them;
- DISFA label line beyond the decoded video's length → row excluded (``beyond_video``);
- DISFA label files of one subject with different lengths → the subject has as many frames as its longest
  file; the missing tail of a shorter file is -1 (``short_label_file``, counted per AU);
- label file (DISFA) or CSV column (BP4D) missing for an AU → that AU is -1 for the subject/sequence
  (``missing_label_file``); a DISFA subject with no label file at all contributes no rows;
- BP4D label 9 → -1 (``label_9``), as OpenGraphAU (ME-GraphAU OpenGraphAU/tool/dataset_process.py) and JAA-Net
  (PyTorch-JAANet util.py ``missing_label``) treat it;
- subject not in a published part → InputError naming subject and file, unless
  ``allow_unknown_subjects``: then its frames are excluded (``unknown_subject``);
- unreadable or malformed label file (bad CSV, value outside the dataset's label set) → InputError naming
  the file: a silently lost sequence would change the published test sets.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from au_ttt.data.protocol import (
    AUS,
    FGNET_FOLD_TEST_PART,
    MEGRAPHAU_FOLD_TEST_PART,
    PARTS,
    au_columns,
    part_of_subject,
    train_parts,
)
from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write, atomic_write_json, umask_mode

__all__ = [
    "BASE_COLUMNS", "META_KEY", "IndexReport", "class_weights", "finalize_index", "fold_split", "fold_summary",
    "frame_image_names", "list_images", "load_index", "naming_hint", "occurrence_rates", "report_path",
    "scan_images", "subject_part", "umask_mode", "write_index",
]

BASE_COLUMNS = ("dataset", "subject", "sequence", "frame", "image", "part")
META_KEY = b"au_ttt"
INDEX_FORMAT = 1
_N_EXAMPLES = 5  # examples kept per reason in the report


@dataclass
class IndexReport:
    """Counts of every exclusion (rows dropped) and every label set to unknown (-1), with examples."""

    dataset: str
    excluded: Counter = field(default_factory=Counter)                   # reason -> frames dropped
    excluded_units: Counter = field(default_factory=Counter)             # "reason (subjects)" -> count
    unknown: dict = field(default_factory=lambda: defaultdict(Counter))  # reason -> AU column -> labels
    examples: dict = field(default_factory=lambda: defaultdict(list))    # reason -> a few examples
    named: dict = field(default_factory=lambda: defaultdict(list))       # reason -> every file (bad images)

    def exclude(self, reason: str, frames: int, example: str, subjects: int = 0, sequences: int = 0) -> None:
        self.excluded[reason] += int(frames)
        if subjects:
            self.excluded_units[f"{reason} (subjects)"] += subjects
        if sequences:
            self.excluded_units[f"{reason} (sequences)"] += sequences
        self._example(reason, example)

    def exclude_files(self, reason: str, files: list[str]) -> None:
        """Exclude one row per file and name every file in the report (for damaged images)."""
        if files:
            self.exclude(reason, len(files), files[0])
            self.named[reason].extend(files)

    def mark_unknown(self, reason: str, au_col: str, labels: int, example: str) -> None:
        self.unknown[reason][au_col] += int(labels)
        self._example(reason, example)

    def _example(self, reason: str, example: str) -> None:
        if len(self.examples[reason]) < _N_EXAMPLES and example not in self.examples[reason]:
            self.examples[reason].append(example)

    def to_dict(self) -> dict:
        return {
            "excluded_frames": dict(sorted(self.excluded.items())),
            "excluded_units": dict(sorted(self.excluded_units.items())),
            "unknown_labels": {r: dict(sorted(c.items())) for r, c in sorted(self.unknown.items())},
            "examples": {r: list(v) for r, v in sorted(self.examples.items())},
            "excluded_images": {r: list(v) for r, v in sorted(self.named.items())},
        }

    def summary(self) -> list[str]:
        lines = [f"excluded {n} frames: {reason} (e.g. {', '.join(self.examples[reason][:2])})"
                 for reason, n in sorted(self.excluded.items())]
        lines += [f"excluded {n} {unit}" for unit, n in sorted(self.excluded_units.items())]
        for reason, per_au in sorted(self.unknown.items()):
            counts = ", ".join(f"{au} {n}" for au, n in per_au.items())
            lines.append(f"set {sum(per_au.values())} labels to -1: {reason} ({counts})")
        return lines or ["nothing excluded, no unknown labels"]


def subject_part(dataset: str, subject: str, source: Path, allow_unknown: bool) -> int | None:
    """Published part of ``subject``; None (caller excludes and counts) only when unknown ones are allowed."""
    try:
        return part_of_subject(dataset, subject)
    except KeyError:
        if allow_unknown:
            return None
        raise InputError(f"{source}: subject {subject!r} is in no published {dataset.upper()} part; "
                         "remove it from the root or pass --allow-unknown-subjects to exclude (and count) "
                         "it") from None


def list_images(folder: Path) -> set[str]:
    """File names in ``folder`` (empty if it does not exist): one listing instead of one stat per frame."""
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()


def frame_image_names(frames, names: set[str] | frozenset[str]) -> list[str | None]:
    """The file in a folder listing ``names`` that holds each frame number's image, or None.

    BP4D names frames ``{frame}.jpg`` (``F001/T1/2440.jpg``, as ME-GraphAU's lists do); some copies are
    zero-padded (``02440.jpg``). The plain name is used when present, else a zero-padded one with the same
    number, so both conventions index the same frames and the index's ``image`` column names the real file.
    """
    out: list[str | None] = [name if (name := f"{int(f)}.jpg") in names else None for f in frames]
    if all(out) or not names:
        return out
    padded: dict[int, str] = {}
    for name in names:
        stem = name[:-4]
        if name.endswith(".jpg") and stem.isdigit() and stem[0] == "0" and len(stem) > 1:
            padded.setdefault(int(stem), name)
    return [name if name is not None else padded.get(int(f)) for f, name in zip(frames, out, strict=True)]


def naming_hint(names: set[str] | frozenset[str], frames) -> str:
    """Why a folder with files matched none of its frames: what the files are called, and the names expected."""
    example = int(next(iter(frames)))
    jpgs = sorted(n for n in names if n.lower().endswith((".jpg", ".jpeg", ".png")))
    if not jpgs:
        return f"the folder holds no image file; expected {example}.jpg (or zero-padded {example:05d}.jpg)"
    return (f"the folder holds {len(jpgs)} image files named like {jpgs[0]!r}, none named after a labelled "
            f"frame number; rename them {example}.jpg (the BP4D and ME-GraphAU convention) or zero-padded "
            f"{example:05d}.jpg")


def scan_images(folder: Path) -> tuple[set[str], set[str]]:
    """(names of non-empty files, names of zero-byte files) in ``folder``; both empty if it does not exist."""
    present, empty = set(), set()
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    size = entry.stat().st_size
                except FileNotFoundError:      # removed while we listed
                    continue
                (present if size > 0 else empty).add(entry.name)
    except FileNotFoundError:
        pass
    return present, empty


def finalize_index(parts: list[pd.DataFrame], dataset: str,
                   report: IndexReport | None = None) -> pd.DataFrame:
    """Concatenate per-sequence frames, add ``dataset``, fix dtypes and the row order."""
    cols = au_columns(dataset)
    if not parts:
        why = "; ".join(report.summary()) if report is not None else "no label rows"
        raise InputError(f"no labelled {dataset.upper()} frame with an image was found ({why}); check --root "
                         "and --frames")
    df = pd.concat(parts, ignore_index=True)
    df.insert(0, "dataset", dataset)
    df = df.astype({"frame": np.int32, "part": np.int8, **{c: np.int8 for c in cols}})
    df = df.sort_values(["part", "subject", "sequence", "frame"], kind="stable", ignore_index=True)
    return df[[*BASE_COLUMNS, *cols]]


def report_path(index_path: str | os.PathLike) -> Path:
    """``index.parquet`` → ``index.report.json`` beside it."""
    path = Path(index_path)
    return path.with_name(path.name.removesuffix(".parquet") + ".report.json")


def write_index(df: pd.DataFrame, out: str | os.PathLike, image_root: str | os.PathLike,
                report: IndexReport, sources: dict[str, str]) -> dict:
    """Write the index, ``*.report.json`` and ``folds.json`` beside it; all content is computed first.

    A fold without defined class weights does not stop the index (a small subset can lack an AU in some
    training parts): it is recorded in folds.json and listed under ``warnings`` in the report.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    dataset = report.dataset
    folds = fold_summary(df, dataset, strict=False)
    warnings = [f["class_weight_error"] for f in folds["folds"].values() if "class_weight_error" in f]
    meta = {"format": INDEX_FORMAT, "dataset": dataset, "image_root": str(Path(image_root).resolve()),
            "aus": list(AUS[dataset]), **sources}
    per_part = df.groupby("part").size()
    full_report = {
        **meta, "index": str(out.resolve()), "rows": len(df), "subjects": int(df.subject.nunique()),
        "sequences": int(df.groupby(["subject", "sequence"]).ngroups),
        "frames_per_part": {str(int(p)): int(n) for p, n in per_part.items()},
        "unknown_labels_per_au": {c: int((df[c] < 0).sum()) for c in au_columns(dataset)},
        **report.to_dict(), "warnings": warnings,
    }
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta)})
    atomic_write(out, lambda tmp: pq.write_table(table, tmp))
    atomic_write_json(report_path(out), full_report)
    atomic_write_json(out.with_name("folds.json"), folds)
    return full_report


def load_index(path: str | os.PathLike) -> pd.DataFrame:
    """Read an index; ``df.attrs`` gets ``image_root`` and ``dataset`` from the parquet metadata."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise InputError(f"frame index {path} not found; build it with `au-ttt data index --out {path}`")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise InputError(f"{path} has no au_ttt metadata; rebuild it with `au-ttt data index`")
    meta = json.loads(raw)
    df = table.to_pandas()
    missing = [c for c in (*BASE_COLUMNS, *au_columns(meta["dataset"])) if c not in df.columns]
    if missing:
        raise InputError(f"{path} lacks columns {missing}; rebuild it with `au-ttt data index`")
    df.attrs.update(meta)
    return df


def fold_split(index: pd.DataFrame, test_part: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) rows of the fold that tests on ``test_part``; subject-exclusive by construction."""
    train = index[index["part"].isin(train_parts(test_part))].reset_index(drop=True)
    test = index[index["part"] == test_part].reset_index(drop=True)
    return train, test


def occurrence_rates(labels: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Per AU: frames labelled 1 / frames with a known label (-1 is ignored). NaN where nothing is known."""
    if isinstance(labels, pd.DataFrame):
        cols = [c for c in labels.columns if str(c).startswith("AU")]
        labels = labels[cols].to_numpy()
    y = np.asarray(labels)
    if y.ndim != 2:
        raise ValueError(f"labels must be (frames, AUs), got shape {y.shape}")
    known = (y >= 0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(known > 0, (y == 1).sum(0) / np.maximum(known, 1), np.nan)


def class_weights(rates: np.ndarray, aus: list[str] | None = None, fold: str | None = None) -> np.ndarray:
    """w_i = N·(1/r_i)/Σ_j(1/r_j) (the lead's ``au_ttt.losses.class_weights``), with errors naming AU/fold."""
    r = np.asarray(rates, dtype=np.float64)
    names = aus or [f"AU index {i}" for i in range(len(r))]
    bad = [n for n, v in zip(names, r, strict=True) if not 0 < v <= 1]
    if bad:
        where = f" in the training parts of {fold}" if fold else ""
        raise InputError(f"occurrence rate of {', '.join(bad)}{where} is zero or undefined (no positive or "
                         "no known label), so no class weight exists; index more subjects or drop that AU")
    from au_ttt.losses import class_weights as _weights  # one formula for loss and folds (imports torch)

    return _weights(r)


def fold_summary(index: pd.DataFrame, dataset: str, strict: bool = True) -> dict:
    """``folds.json`` content: per test part the subjects, frame counts, training rates and weights.

    A fold whose weights are undefined (an AU never occurs in its training parts) raises when ``strict``;
    otherwise its ``class_weights`` is null and ``class_weight_error`` says which AU and fold.
    """
    cols = au_columns(dataset)
    to_mega = {v: k for k, v in MEGRAPHAU_FOLD_TEST_PART.items()}
    to_fgnet = {v: k for k, v in FGNET_FOLD_TEST_PART.items()}
    present = set(index["subject"])
    folds = {}
    for test_part in (1, 2, 3):
        train, test = fold_split(index, test_part)
        name = f"fold test_part={test_part} (ME-GraphAU fold {to_mega[test_part]})"
        rates = occurrence_rates(train[cols])
        try:
            weights, error = dict(zip(cols, map(float, class_weights(rates, cols, name)), strict=True)), None
        except InputError as err:
            if strict:
                raise
            weights, error = None, str(err)
        folds[str(test_part)] = {
            "test_part": test_part, "train_parts": list(train_parts(test_part)),
            "megraphau_fold": to_mega[test_part], "fgnet_fold": to_fgnet[test_part],
            "train_subjects": _ordered(dataset, train_parts(test_part), present),
            "test_subjects": _ordered(dataset, (test_part,), present),
            "missing_published_subjects": sorted(set(PARTS[dataset][test_part]) - present),
            "train_frames": len(train), "test_frames": len(test),
            "train_known_labels": {c: int((train[c] >= 0).sum()) for c in cols},
            "train_rates": {c: None if np.isnan(r) else float(r) for c, r in zip(cols, rates, strict=True)},
            "class_weights": weights,
            **({"class_weight_error": error} if error else {}),
        }
    return {
        "dataset": dataset, "named_by": "test part",
        "megraphau_fold_to_test_part": {str(k): v for k, v in MEGRAPHAU_FOLD_TEST_PART.items()},
        "fgnet_fold_to_test_part": {str(k): v for k, v in FGNET_FOLD_TEST_PART.items()},
        "rate_definition": "frames labelled 1 / frames with a known label, training parts only",
        "weight_definition": "w_i = N*(1/r_i)/sum_j(1/r_j) (ME-GraphAU, JAA-Net)",
        "folds": folds,
    }


def _ordered(dataset: str, parts: tuple[int, ...], present: set[str]) -> list[str]:
    return [s for p in parts for s in PARTS[dataset][p] if s in present]
