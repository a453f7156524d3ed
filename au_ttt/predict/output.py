"""The per-frame CSV schema of ``au-ttt predict`` — the one place its columns and formats are defined.

OpenFace-style (``FeatureExtraction`` output; py-feat reads the same layout), one row per face and frame::

    input, frame, timestamp, face_id, confidence, success, face_x, face_y, face_w, face_h,
    x_0 … x_67, y_0 … y_67, AU01_p … (probability), AU01_c … (0/1 at the threshold)

* ``frame`` is the 0-based frame index in the file (an image is frame 0); ``timestamp`` is in seconds.
* A frame with no face is one row with ``success = 0``, ``face_id = -1`` and empty values; it is never dropped.
  A face whose landmarks allow no alignment fit keeps its box and landmarks with ``success = 0``.
* ``confidence`` is the detector's: MTCNN's face probability (0–1) or dlib HOG's SVM score (unbounded);
  1 for landmarks read from a file without a confidence column.
* Coordinates are pixels of the upright frame (after EXIF / video rotation), origin top-left.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["AtomicCsv", "FaceRow", "au_columns", "columns", "format_row"]

_BASE = ["input", "frame", "timestamp", "face_id", "confidence", "success", "face_x", "face_y", "face_w", "face_h"]
LANDMARK_COLUMNS = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]


def au_columns(aus: Sequence[int]) -> tuple[list[str], list[str]]:
    """(probability columns, decision columns): ``AU01_p``…, ``AU01_c``… (two digits, as OpenFace)."""
    return [f"AU{a:02d}_p" for a in aus], [f"AU{a:02d}_c" for a in aus]


def columns(aus: Sequence[int]) -> list[str]:
    p, c = au_columns(aus)
    return [*_BASE, *LANDMARK_COLUMNS, *p, *c]


class FaceRow:
    """One output row before formatting; ``probs`` None when the row has no score."""

    __slots__ = ("box", "confidence", "face_id", "frame", "input", "points", "probs", "success", "timestamp")

    def __init__(self, input: str, frame: int, timestamp: float, face_id: int = -1, confidence: float = math.nan,
                 box: np.ndarray | None = None, points: np.ndarray | None = None, probs: np.ndarray | None = None,
                 success: bool = False) -> None:
        self.input, self.frame, self.timestamp, self.face_id = input, frame, timestamp, face_id
        self.confidence, self.box, self.points, self.probs, self.success = confidence, box, points, probs, success


def _num(value: float, fmt: str) -> str:
    return "" if value is None or not math.isfinite(value) else format(value, fmt)


def format_row(row: FaceRow, thresholds: np.ndarray) -> list[str]:
    """Text cells in :func:`columns` order; probabilities keep float32 precision (9 significant digits)."""
    n = len(thresholds)
    out = [row.input, str(row.frame), _num(row.timestamp, ".4f"), str(row.face_id), _num(row.confidence, ".6g"),
           "1" if row.success else "0"]
    if row.box is not None:
        x1, y1, x2, y2 = (float(v) for v in row.box)
        out += [_num(x1, ".1f"), _num(y1, ".1f"), _num(x2 - x1, ".1f"), _num(y2 - y1, ".1f")]
    else:
        out += [""] * 4
    if row.points is not None:
        pts = np.asarray(row.points, np.float64)
        out += [_num(v, ".2f") for v in pts[:, 0]] + [_num(v, ".2f") for v in pts[:, 1]]
    else:
        out += [""] * 136
    if row.probs is not None:
        probs = np.asarray(row.probs, np.float64)
        out += [_num(p, ".9g") for p in probs] + [str(int(p >= t)) for p, t in zip(probs, thresholds, strict=True)]
    else:
        out += [""] * (2 * n)
    return out


class AtomicCsv:
    """A CSV written row by row beside its target and renamed into place by :meth:`commit`
    (the :mod:`au_ttt.fileio` rule: a reader never sees half a file; :meth:`abort` leaves nothing; a
    killed writer's temporary is swept by the next writer, :func:`au_ttt.fileio.sweep_stale`)."""

    def __init__(self, path: str | Path, header: list[str]) -> None:
        from au_ttt.fileio import temp_file, umask_mode

        self.path = Path(path)
        self.tmp = temp_file(self.path)
        os.chmod(self.tmp, umask_mode())
        self.fh = self.tmp.open("w", newline="")
        self.writer = csv.writer(self.fh)
        self.writer.writerow(header)
        self.rows = 0

    def write(self, cells: list[str]) -> None:
        self.writer.writerow(cells)
        self.rows += 1

    def commit(self) -> Path:
        self.fh.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)
