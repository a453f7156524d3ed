"""Writers for the BP4D and DISFA on-disk layouts (ME-GraphAU tool/*_image_label_process.py), byte-deterministic.

- BP4D: ``AUCoding/AU_OCC/{subject}_{task}.csv`` (header ``0,1,2,4,…``: frame number, then AU numbers),
  frames ``{subject}/{task}/{frame}.jpg`` with un-padded frame numbers.
- DISFA: ``Videos_LeftCamera/LeftVideo{SN}_comp.avi`` and ``ActionUnit_Labels/{SN}/{SN}_au{N}.txt`` with lines
  ``frame,intensity``; the first column is 1-based like the real files, and line t (0-based) belongs to decoded
  video frame t (the ME-GraphAU convention, maintainer in ME-GraphAU issue #2).

The generator builds the whole tree in a temporary directory and renames it into place, so these writers
write plainly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DISFA_FOURCC",
    "DISFA_FPS",
    "DISFA_LABEL_AUS",
    "bp4d_frame_path",
    "disfa_label_path",
    "disfa_video_path",
    "open_disfa_video",
    "write_bp4d_csv",
    "write_disfa_labels",
    "write_jpeg",
]

# The 12 AUs DISFA codes (LibreFace create_csv.py; ME-GraphAU tool/DISFA_image_label_process.py).
DISFA_LABEL_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
DISFA_FPS = 20.0        # DISFA was recorded at 20 fps
DISFA_FOURCC = "XVID"   # MPEG-4 part 2 through FFMPEG: reads back in OpenCV 5 and encodes deterministically


def bp4d_frame_path(root: Path, subject: str, task: str, frame: int) -> Path:
    return root / subject / task / f"{int(frame)}.jpg"


def disfa_video_path(root: Path, subject: str) -> Path:
    return root / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi"


def disfa_label_path(root: Path, subject: str, au: int) -> Path:
    return root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt"


def write_jpeg(path: Path, img: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


def write_bp4d_csv(root: Path, subject: str, task: str, frames: Sequence[int], columns: Sequence[int],
                   codes: np.ndarray) -> Path:
    """``AUCoding/AU_OCC/{subject}_{task}.csv``: codes (n_frames, n_columns) in {0, 1, 9}."""
    codes = np.asarray(codes)
    if codes.shape != (len(frames), len(columns)) or not np.isin(codes, (0, 1, 9)).all():
        raise ValueError(f"codes must be (n_frames, n_columns) of 0/1/9, got {codes.shape}")
    path = root / "AUCoding" / "AU_OCC" / f"{subject}_{task}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(["0", *map(str, columns)])]
    lines += [",".join([str(int(f)), *map(str, row.tolist())]) for f, row in zip(frames, codes, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_disfa_labels(root: Path, subject: str, intensity: np.ndarray) -> list[Path]:
    """One ``{SN}_au{N}.txt`` per DISFA AU; ``intensity`` is (n_frames, 12) integers 0–5 in DISFA_LABEL_AUS order."""
    intensity = np.asarray(intensity)
    if intensity.shape[1:] != (len(DISFA_LABEL_AUS),) or intensity.min() < 0 or intensity.max() > 5:
        raise ValueError(f"intensity must be (n, 12) in 0..5, got {intensity.shape}")
    paths = []
    for j, au in enumerate(DISFA_LABEL_AUS):
        path = disfa_label_path(root, subject, au)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{t + 1},{int(v)}\n" for t, v in enumerate(intensity[:, j])))
        paths.append(path)
    return paths


def open_disfa_video(root: Path, subject: str, width: int, height: int) -> cv2.VideoWriter:
    """A VideoWriter for the left-camera AVI; raises if this OpenCV build cannot encode it."""
    path = disfa_video_path(root, subject)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*DISFA_FOURCC), DISFA_FPS,
                             (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot open a {DISFA_FOURCC} AVI writer for {path} (needs FFMPEG video I/O)")
    return writer
