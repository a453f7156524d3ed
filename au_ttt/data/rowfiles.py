"""Files row-aligned with a frame index: their index hash, deterministic npz, shard subjects, image errors.

Every per-row output (landmarks, aligned crops, AU-centre cache) stores the hash of the index rows it was
made for (:func:`index_hash`) and, for a shard, its subjects, so a later stage refuses a file made for
other rows with a message naming both (:func:`stale_message`). Arrays are written as an uncompressed
``.npz`` with fixed zip timestamps (:func:`atomic_save_npz`): same arrays, same bytes.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from au_ttt.data.images import IMAGE_ERRORS, ImageError
from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write

__all__ = [
    "INDEX_KEY_COLUMNS", "atomic_save_npz", "bad_image_summary", "image_error_code", "index_hash",
    "read_subjects", "stale_message", "subjects_array",
]

INDEX_KEY_COLUMNS = ("dataset", "subject", "sequence", "frame", "image")


def index_hash(index: pd.DataFrame) -> str:
    """Hash of the index's row identity, stored in every per-row file so that a stale file is refused."""
    missing = [c for c in INDEX_KEY_COLUMNS if c not in index.columns]
    if missing:
        raise InputError(f"frame index lacks columns {missing}; rebuild it with `au-ttt data index`")
    # per-row 64-bit hashes of the key columns as text (so int32/int64 frame dtypes hash alike), then sha256
    rows = pd.util.hash_pandas_object(index.loc[:, list(INDEX_KEY_COLUMNS)].astype(str), index=False)
    return hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()[:16]


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def atomic_save_npz(path: str | Path, **arrays: Any) -> None:
    """An uncompressed ``.npz`` (what np.savez writes) through :func:`au_ttt.fileio.atomic_write`.

    Unlike np.savez, every zip entry carries a fixed timestamp, so the same arrays always give the same
    bytes: reruns, sharded and unsharded runs can be compared (and content-hashed) file by file.
    """
    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, value in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)

    atomic_write(path, write)


def subjects_array(subjects: tuple[str, ...] | None) -> dict[str, np.ndarray]:
    """The ``subjects`` entry of a shard's npz (none for a file covering the whole index)."""
    return {} if subjects is None else {"subjects": np.array(list(subjects), dtype=str)}


def read_subjects(z: Any) -> tuple[str, ...] | None:
    return tuple(str(s) for s in z["subjects"]) if "subjects" in z.files else None


def image_error_code(err: ImageError) -> int:
    """Row code of an image problem: 1 + its position in IMAGE_ERRORS (0 means the image was fine)."""
    return 1 + IMAGE_ERRORS.index(err.reason if err.reason in IMAGE_ERRORS else "damaged")


def bad_image_summary(codes: np.ndarray, images: Any) -> dict[str, Any]:
    """Counts per reason and every excluded frame by name, for a stage's report."""
    codes = np.asarray(codes)
    rows = np.flatnonzero(codes > 0)
    names = np.asarray(images, dtype=object)
    reasons = [IMAGE_ERRORS[int(c) - 1] for c in codes[rows]]
    return {
        "bad_images_by_reason": {r: reasons.count(r) for r in IMAGE_ERRORS if r in reasons},
        "bad_image_frames": [{"image": str(names[i]), "reason": r} for i, r in zip(rows, reasons, strict=True)],
    }


def stale_message(path: Path, what: str, stored: str, subjects: tuple[str, ...] | None, index: pd.DataFrame,
                  fix: str) -> str:
    """Why a per-row file does not fit ``index``: names the shard it was made for when it records one."""
    made = f"subjects {', '.join(subjects)}" if subjects is not None else "a whole index"
    given = index.attrs.get("subjects")
    wanted = f"subjects {', '.join(given)}" if given is not None else "the whole index"
    return (f"{path}: {what} made for another frame index or shard ({made}, index hash {stored}; this run: "
            f"{wanted}, hash {index_hash(index)}); {fix}")
