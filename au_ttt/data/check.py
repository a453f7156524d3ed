"""Pre-flight check of a licensed BP4D or DISFA copy against the published protocol (``au-ttt data check``).

Hours of landmarks, crops and training should not start on a copy that lacks a subject or whose label files
are cut short. This module walks a copy with the pipeline's own readers (:mod:`au_ttt.data.bp4d`,
:mod:`au_ttt.data.disfa`, :mod:`au_ttt.data.video`, :func:`au_ttt.data.images.read_image`) and reports every
mismatch as one :class:`Finding` naming what and where (file, subject, AU column).

What is compared (protocol facts and their sources: :mod:`au_ttt.data.protocol`):

* subjects: every published subject (41 BP4D, 27 DISFA; or the ones given with ``subjects``) must be present;
  a subject outside the published parts is an error too, because ``au-ttt data index`` refuses it unless
  ``--allow-unknown-subjects``;
* BP4D sequences T1–T8 per subject and the labelled frames per part (50,631 / 50,182 / 46,034);
  DISFA label lines per subject (4,845; SN010 4,844) — these two only with ``expect="published"``;
* AU columns: a column per evaluated BP4D AU in each ``AU_OCC`` CSV, a label file per evaluated DISFA AU;
* label values: BP4D 0/1/9 (9 = unknown, masked by the pipeline: a warning), DISFA intensities 0–5;
* DISFA: the left-camera video's frame count against the label lines (container header by default, every
  frame decoded with ``full``), and all AU files of a subject having the same number of lines;
* images: each labelled frame has an image (BP4D ``{subject}/{task}/{frame}.jpg``; DISFA the decoded
  ``SN###/{t}.jpg`` when a frames folder is given), and images decode without damage — ``sample`` frames
  per sequence, evenly spaced and always the same ones, or every frame with ``full``.

``expect="structure"`` drops the absolute counts (for format replicas and SynthAU, which are small on
purpose) and keeps every structural fact above.

Errors and warnings (exit status 1 when there is any error, 0 otherwise):

* count mismatches (labelled frames, label lines, video frames, frames without an image) are **warnings**
  when the difference is at most ``tolerance`` × the expected count (default 0.5 %: a licensed copy may
  legitimately miss a few frames) and **errors** beyond it;
* label 9 in an evaluated BP4D AU, a BP4D task outside T1–T8 and a video *longer* than its label files are
  warnings (the pipeline copes with them);
* everything else listed above is an error: missing or unknown subjects, missing sequences, missing AU
  columns or label files, bad label values, unreadable label files, missing or unreadable videos, and
  damaged images.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from au_ttt.data import bp4d, disfa, video
from au_ttt.data.check_report import DEFAULT_SAMPLE, DEFAULT_TOLERANCE, CheckReport, Finding, compare_count
from au_ttt.data.frame_index import frame_image_names, list_images, naming_hint
from au_ttt.data.images import ImageError, opened_video, read_image
from au_ttt.data.protocol import (
    BP4D_AUS,
    BP4D_PART_FRAMES,
    BP4D_TASKS,
    DISFA_AUS,
    PARTS,
    disfa_label_lines,
)
from au_ttt.datasets import registry
from au_ttt.errors import InputError

__all__ = ["DEFAULT_SAMPLE", "DEFAULT_TOLERANCE", "CheckReport", "Finding", "check_bp4d", "check_dataset",
           "check_disfa", "compare_count", "expected_subjects", "sample_positions", "video_frame_count"]

Expect = Literal["published", "structure"]
_BP4D_VALUES = (0, 1, 9)


def sample_positions(n: int, sample: int, full: bool) -> list[int]:
    """Positions of the items to decode: all with ``full``, else ``sample`` evenly spaced ones (ends included)."""
    if full or sample >= n:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, sample).round().astype(int).tolist()))


def video_frame_count(path: Path, decode: bool) -> tuple[int, str]:
    """Frames of a video: the container's count (after decoding the first frame), or every frame decoded.

    Falls back to decoding when the container does not state a count. Returns (frames, how it was counted).
    """
    import cv2

    with opened_video(path, "re-copy it from the dataset") as capture:
        stated = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if not decode and stated > 0:
            ok, _ = capture.read()
            if not ok:
                raise InputError(f"{path}: the first frame does not decode; re-copy the video from DISFA")
            return stated, "container"
        count = 0
        while capture.grab():
            count += 1
        if count == 0:
            raise InputError(f"{path}: no frame decodes; re-copy the video from DISFA")
        return count, "decoded"


def check_dataset(dataset: str, root: str | Path, frames: str | Path | None = None, *,
                  expect: Expect = "published", sample: int = DEFAULT_SAMPLE, full: bool = False,
                  tolerance: float = DEFAULT_TOLERANCE, subjects: Sequence[str] | None = None,
                  progress: bool = True) -> CheckReport:
    """Check one dataset copy; ``frames`` is BP4D's image root (default ``root``) or DISFA's decoded frames.

    ``subjects`` restricts the check to some published subjects (default: all of them must be there).
    """
    if dataset not in registry.names():
        raise InputError(f"unknown dataset {dataset!r}; use one of {', '.join(registry.names())}")
    if expect not in ("published", "structure"):
        raise InputError(f"expect must be 'published' or 'structure', got {expect!r}")
    if sample < 1:
        raise InputError(f"--sample must be at least 1, got {sample}")
    if not 0 <= tolerance < 1:
        raise InputError(f"--tolerance is a fraction in [0, 1), got {tolerance}")
    if not Path(root).is_dir():
        raise InputError(f"--root {root}: no such folder; point it at your licensed {dataset.upper()} copy")
    frames_root = Path(frames) if frames is not None else None
    return registry.get(dataset).check(Path(root), frames_root, expect=expect, sample=sample, full=full,
                                       tolerance=tolerance, subjects=subjects, progress=progress)


def expected_subjects(dataset: str, subjects: Sequence[str] | None) -> set[str]:
    """The published subjects to check: all, or the given ones (each must be published)."""
    published = [s for part in PARTS[dataset].values() for s in part]
    if subjects is None:
        return set(published)
    unknown = [s for s in subjects if s not in published]
    if unknown:
        raise InputError(f"--subjects {' '.join(unknown)}: not published {dataset.upper()} subjects (known: "
                         f"{', '.join(published)})")
    return set(subjects)


def _report(dataset: str, root: Path, expect: str, sample: int, full: bool, images: bool = True) -> CheckReport:
    how = "every one decoded" if full else f"{sample} per sequence decoded"
    if not images:
        how = "not checked (no --frames); videos: " + ("every frame decoded" if full else "first frame decoded")
    return CheckReport(dataset, str(root), expect, how)


def _check_images(report: CheckReport, folder: Path, stems: list, labelled: int, where: str, subject: str,
                  sample: int, full: bool, tolerance: float) -> None:
    """Frames without an image (counted against ``labelled``) and damaged images among the sampled ones."""
    names = list_images(folder)
    files = frame_image_names(stems, names)
    present = [f for f in files if f is not None]
    missing = [s for s, f in zip(stems, files, strict=True) if f is None]
    if missing:
        hint = f"; {naming_hint(names, stems)}" if not present and names else ""
        report.add(compare_count(labelled, len(present), tolerance), "missing_images", where,
                   f"{len(missing)} of {labelled} labelled frames have no image in {folder} "
                   f"(first: {missing[0]}.jpg){hint}", subject)
    report.counts["images_missing"] = report.counts.get("images_missing", 0) + len(missing)
    for pos in sample_positions(len(present), sample, full):
        path = folder / present[pos]
        try:
            read_image(path)
        except ImageError as err:
            text = str(err).removeprefix(f"{path}: ")
            report.add("error", "unreadable_image", str(path), text, subject)
        report.counts["images_decoded"] = report.counts.get("images_decoded", 0) + 1


# --------------------------------------------------------------------------------------------- BP4D
def _task_of(name: str, subject: str) -> str | None:
    """'T3' for ``{subject}_T3.csv``, else None (the AU_OCC naming, bp4d.py)."""
    task = name.removeprefix(f"{subject}_").removesuffix(".csv")
    ok = name.startswith(f"{subject}_") and name.endswith(".csv") and task[:1] == "T" and task[1:].isdigit()
    return task if ok else None


def _bp4d_sequences(report: CheckReport, label_dir: Path, expect: str,
                    wanted: set[str]) -> list[tuple[str, str, int, Path]]:
    """(subject, task, part, csv) of each wanted subject's label files; reports missing and unknown ones."""
    files = {p.name: p for p in label_dir.glob("*.csv")}
    claimed: set[str] = set()
    out = []
    for part, subjects in PARTS[bp4d.DATASET].items():
        for subject in subjects:
            tasks = sorted((task, name) for name in files if (task := _task_of(name, subject)) is not None)
            claimed |= {name for _, name in tasks}
            if subject not in wanted:
                continue
            if not tasks:
                report.add("error", "missing_subject", f"{subject} (part {part})",
                           f"no label file {bp4d.LABEL_DIR}/{subject}_T*.csv", subject)
                continue
            present = [t for t, _ in tasks]
            if expect == "published":
                for task in (t for t in BP4D_TASKS if t not in present):
                    report.add("error", "missing_sequence", f"{subject}/{task}",
                               f"no {bp4d.LABEL_DIR}/{subject}_{task}.csv (BP4D has tasks T1-T8 per subject)",
                               subject)
                for task in (t for t in present if t not in BP4D_TASKS):
                    report.add("warning", "unexpected_sequence", f"{subject}/{task}",
                               "not a BP4D task (T1-T8); `au-ttt data index` indexes it anyway", subject)
            out += [(subject, task, part, files[name]) for task, name in tasks]
    for name in sorted(set(files) - claimed):
        report.add("error", "unexpected_file", f"{bp4d.LABEL_DIR}/{name}",
                   "not {published subject}_T{n}.csv: `au-ttt data index` refuses it (unknown subject or bad "
                   "name); remove it, or index with --allow-unknown-subjects if the subject is the problem")
    return out


def _bp4d_labels(report: CheckReport, table, where: str, subject: str) -> None:
    unknown = []
    for au in BP4D_AUS:
        col, name = str(au), f"AU{au}"
        if col not in table.columns:
            report.add("error", "missing_au_column", where,
                       f"no column '{col}' ({name}); every evaluated AU ({', '.join(map(str, BP4D_AUS))}) "
                       "needs one", subject, name)
            continue
        values = table[col].to_numpy()
        bad = ~np.isin(values, _BP4D_VALUES)
        if bad.any():
            i = int(np.argmax(bad))
            report.add("error", "bad_label_value", f"{where} frame {table.index[i]}",
                       f"{name} is {values[i]}; BP4D occurrence labels are 0, 1 or 9 ({int(bad.sum())} such "
                       "cells in this column)", subject, name)
        if (values == 9).any():
            unknown.append(f"{name} in {int((values == 9).sum())} frames")
    if unknown:
        report.add("warning", "label_9", where, "label 9 (unknown; masked in training and evaluation, absent "
                   f"from the published lists): {', '.join(unknown)}", subject)


def check_bp4d(root: Path, frames: Path | None = None, *, expect: Expect = "published",
               sample: int = DEFAULT_SAMPLE, full: bool = False, tolerance: float = DEFAULT_TOLERANCE,
               subjects: Sequence[str] | None = None, progress: bool = True) -> CheckReport:
    """Check a BP4D copy: ``AUCoding/AU_OCC/*.csv`` and ``{subject}/{task}/{frame}.jpg`` under ``frames``."""
    report = _report(bp4d.DATASET, root, expect, sample, full)
    image_root = frames if frames is not None else root
    label_dir = root / bp4d.LABEL_DIR
    if not label_dir.is_dir():
        report.add("error", "missing_label_dir", str(label_dir),
                   f"not found; --root must be the BP4D folder that contains {bp4d.LABEL_DIR}/")
        return report
    wanted = expected_subjects(bp4d.DATASET, subjects)
    sequences = _bp4d_sequences(report, label_dir, expect, wanted)
    per_part: Counter = Counter()
    for subject, task, part, path in tqdm(sequences, desc="BP4D sequences", unit="csv", disable=not progress):
        where = f"{bp4d.LABEL_DIR}/{path.name}"
        try:
            table = bp4d.read_occurrence_csv(path)
        except InputError as err:
            report.add("error", "unreadable_labels", where, str(err).removeprefix(f"{path}: "), subject)
            continue
        per_part[part] += len(table)
        _bp4d_labels(report, table, where, subject)
        _check_images(report, image_root / subject / task, table.index.tolist(), len(table), f"{subject}/{task}",
                      subject, sample, full, tolerance)
    if expect == "published" and subjects is None:  # published counts are per part: all subjects needed
        for part, expected in BP4D_PART_FRAMES.items():
            report.add(compare_count(expected, per_part[part], tolerance), "labelled_frames", f"part {part}",
                       f"{per_part[part]:,} labelled frames (AU_OCC rows of the part's subjects), published "
                       f"{expected:,} (ME-GraphAU lists); difference {per_part[part] - expected:+,}")
    report.counts = {"subjects": len({s for s, *_ in sequences}), "sequences": len(sequences),
                     "labelled_frames": sum(per_part.values()),
                     **{f"part_{p}_frames": per_part[p] for p in sorted(BP4D_PART_FRAMES)}, **report.counts}
    return report


# -------------------------------------------------------------------------------------------- DISFA
def _disfa_labels(report: CheckReport, root: Path, subject: str, tolerance: float) -> int | None:
    """Label lines of a subject (its longest AU file); reports missing, bad and disagreeing files."""
    lengths = {}
    for au in DISFA_AUS:
        path = disfa.label_path(root, subject, au)
        where = f"{disfa.LABEL_DIR}/{subject}/{path.name}"
        if not path.is_file():
            report.add("error", "missing_au_file", where, f"no label file for AU{au}; every evaluated AU "
                       f"({', '.join(map(str, DISFA_AUS))}) needs one", subject, f"AU{au}")
            continue
        try:
            lengths[au] = len(disfa.read_intensity_file(path))
        except InputError as err:
            detail = str(err).removeprefix(str(path)).lstrip(":")
            report.add("error", "bad_label_value", where, f"line {detail}" if detail[:1].isdigit() else detail,
                       subject, f"AU{au}")
    if not lengths:
        return None
    n = max(lengths.values())
    for au, k in lengths.items():
        if k != n:
            report.add(compare_count(n, k, tolerance), "label_lines",
                       f"{disfa.LABEL_DIR}/{subject}/{subject}_au{au}.txt",
                       f"{k} lines, the longest AU file of {subject} has {n}: AU{au} is unknown past line {k}",
                       subject, f"AU{au}")
    return n


def _disfa_video(report: CheckReport, root: Path, subject: str, lines: int, full: bool, tolerance: float) -> None:
    path = video.video_path(root, subject)
    where = f"{video.VIDEO_DIR}/{path.name}"
    if not path.is_file():
        report.add("error", "missing_video", where, f"no left-camera video for {subject}", subject)
        return
    try:
        frames, how = video_frame_count(path, decode=full)
    except InputError as err:
        report.add("error", "unreadable_video", where, str(err).removeprefix(f"{path}: "), subject)
        return
    report.counts["video_frames"] = report.counts.get("video_frames", 0) + frames
    if frames < lines:
        report.add(compare_count(lines, frames, tolerance), "video_frames", where,
                   f"{frames} frames ({how}), the label files of {subject} have {lines} lines: the labels past "
                   f"frame {frames} have no image", subject)
    elif frames > lines:
        report.add("warning", "video_frames", where,
                   f"{frames} frames ({how}), the label files of {subject} have {lines} lines: the extra frames "
                   "are unlabelled and ignored; line t must still be frame t", subject)


def check_disfa(root: Path, frames: Path | None = None, *, expect: Expect = "published",
                sample: int = DEFAULT_SAMPLE, full: bool = False, tolerance: float = DEFAULT_TOLERANCE,
                subjects: Sequence[str] | None = None, progress: bool = True) -> CheckReport:
    """Check a DISFA copy: label files, left-camera videos and, with ``frames``, the decoded frames."""
    report = _report(disfa.DATASET, root, expect, sample, full, images=frames is not None)
    label_dir = root / disfa.LABEL_DIR
    if not label_dir.is_dir():
        report.add("error", "missing_label_dir", str(label_dir),
                   f"not found; --root must be the DISFA folder that contains {disfa.LABEL_DIR}/")
        return report
    present = {p.name for p in label_dir.iterdir() if p.is_dir()}
    published = {s for subjects in PARTS[disfa.DATASET].values() for s in subjects}
    for name in sorted(present - published):
        report.add("error", "unknown_subject", f"{disfa.LABEL_DIR}/{name}",
                   "not a published DISFA subject: `au-ttt data index` refuses it; remove it or index with "
                   "--allow-unknown-subjects", name)
    per_part: dict[int, int] = defaultdict(int)
    wanted = expected_subjects(disfa.DATASET, subjects)
    todo = [(part, s) for part, names in PARTS[disfa.DATASET].items() for s in names if s in wanted]
    for part, subject in tqdm(todo, desc="DISFA subjects", unit="subject", disable=not progress):
        if subject not in present:
            report.add("error", "missing_subject", f"{subject} (part {part})",
                       f"no folder {disfa.LABEL_DIR}/{subject}/", subject)
            continue
        lines = _disfa_labels(report, root, subject, tolerance)
        if lines is None:
            continue
        per_part[part] += lines
        if expect == "published":
            expected = disfa_label_lines(subject)
            report.add(compare_count(expected, lines, tolerance), "labelled_frames", subject,
                       f"{lines:,} label lines, published {expected:,} (ME-GraphAU lists)", subject)
        _disfa_video(report, root, subject, lines, full, tolerance)
        if frames is not None:
            _disfa_frames(report, frames / subject, subject, lines, sample, full, tolerance)
    report.counts = {"subjects": len(present & wanted), "labelled_frames": sum(per_part.values()),
                     **{f"part_{p}_frames": per_part[p] for p in (1, 2, 3)}, **report.counts}
    return report


def _disfa_frames(report: CheckReport, folder: Path, subject: str, lines: int, sample: int, full: bool,
                  tolerance: float) -> None:
    """The decoded frames of one subject (``au-ttt data frames``): complete, and decodable."""
    try:
        marker = video.read_marker(folder) if folder.is_dir() else None
    except InputError as err:
        report.add("error", "unreadable_marker", str(folder / video.FRAMES_MARKER), str(err), subject)
        return
    if marker is None:
        report.add("error", "missing_decoded_frames", str(folder),
                   f"not decoded by `au-ttt data frames` (no {video.FRAMES_MARKER}); run it first", subject)
        return
    _check_images(report, folder, list(range(lines)), lines, f"{subject} decoded frames", subject, sample, full,
                  tolerance)
