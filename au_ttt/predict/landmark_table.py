"""Landmarks supplied by the user (``predict --landmarks FILE``) instead of the face detector.

The file is a CSV (or Parquet) with one row per face: ``input`` (path of the image or video, absolute or
relative to the landmark file's folder), ``frame`` (0-based; 0 for an image), the 68-point columns
``x_0 … x_67, y_0 … y_67`` (empty where a point is unknown, e.g. 49- or 66-point annotations) and
optionally ``confidence``. ``predict``'s own CSV has this layout, so its landmarks can be edited and fed
back; so can OpenFace's 2D landmarks after renaming the columns. Frames without a row count as frames
without a face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from au_ttt.errors import InputError

__all__ = ["LandmarkTable", "read_landmark_table"]

_POINT_COLUMNS = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]

LandmarkTable = dict[tuple[str, int], list[tuple[np.ndarray, float]]]


def read_landmark_table(path: str | Path) -> LandmarkTable:
    """(resolved input path, frame) → [(points (68, 2) float32, confidence), …] in file order."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: landmark file not found")
    try:
        table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise InputError(f"{path}: cannot read the landmark table ({err})") from err
    missing = [c for c in ["input", "frame", *_POINT_COLUMNS] if c not in table.columns]
    if missing:
        raise InputError(f"{path}: landmark table lacks column(s) {', '.join(missing[:6])}"
                         f"{' …' if len(missing) > 6 else ''}; it needs input, frame, x_0…x_67, y_0…y_67")
    if "success" in table.columns:
        table = table[table["success"].fillna(0).astype(int) == 1]
    pts = table[_POINT_COLUMNS].to_numpy(np.float32)
    points = np.stack([pts[:, :68], pts[:, 68:]], axis=-1)
    conf = table["confidence"].to_numpy(np.float64) if "confidence" in table.columns else np.ones(len(table))
    out: LandmarkTable = {}
    for name, frame, p, c in zip(table["input"].astype(str), table["frame"], points, conf, strict=True):
        if not np.isfinite(p).any():
            continue
        file = Path(name).expanduser()
        key = (str((file if file.is_absolute() else path.parent / file).resolve()), int(frame))
        out.setdefault(key, []).append((p, float(c) if np.isfinite(c) else 1.0))
    return out
