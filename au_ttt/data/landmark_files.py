"""The landmark files BP4D and DISFA ship, read into (and written from) the 68-point iBUG scheme.

One implementation shared by the ``provided`` landmark backend (reads) and the SynthAU generator (writes
format replicas), so both agree on file names, keys, index schemes and the pixel origin.

Formats (BP4D naming from public loaders, see below):

- **BP4D**: ``{root}/2DFeatures/{subject}_{task}.mat``, variable ``fit``: a struct array, one element per
  frame, field ``pred`` = 49×2 (x, y), **1-based** MATLAB pixels (JAA-Net subtracts 1:
  PyTorch-JAANet/dataset/face_transform.py). An empty ``pred`` marks a frame without landmarks (BP4D lacks
  some, e.g. M010/T6/958: ADLD issue #1). The file name and the ``fit``/``pred`` keys come from a public BP4D
  loader (chinaza/ml-cw1 loader.py reads ``2DFeatures/*.mat`` → ``fit/pred``, 49×2 per frame) and the BP4D+
  layout (ubicomplab/rPPG-Toolbox issue #237: ``2DFeatures/F001_T1.mat``). *Decision*: we also write a
  ``frame`` field (the frame number of ``{subject}/{task}/{frame}.jpg``); a file without it maps element
  i (0-based) to frame i, which is unverified. The shipped files are MATLAB v7.3 (HDF5, the loader above
  needs h5py); scipy.io cannot read those, so we raise an InputError telling the user to re-save as v7.
- **DISFA**: ``{root}/Landmark_Points/{SN}/tmp_frame_lm/{SN}_{k:04d}_lm.mat`` (some files are named
  ``l0{k:04d}_lm.mat``), key ``pts`` = 66×2. mat k ↔ 0-based video frame k, i.e. line k of the label file
  (ffmpeg's 1-based frame k+1), the same 0-based convention as our extracted frames.
  *Decision*: coordinates are treated as 1-based like BP4D's (both are MATLAB products; JAA-Net's pipeline
  subtracts 1 from every landmark file it aligns). Change ``DISFA_ORIGIN`` if a check on real data disagrees.

Index schemes (0-based): the 66-point scheme is the 68-point one without the inner mouth
corners 60 and 64; the 49-point scheme is the 66-point one without the 17 jaw points, i.e. 49-pt i → 68-pt
i+17 for i ≤ 42 and 43..48 → 61, 62, 63, 65, 66, 67. Points a scheme lacks are NaN in the 68-point array.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io

from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write, building_dir

__all__ = [
    "BP4D_ORIGIN", "DISFA_ORIGIN", "IDX49_IN_68", "IDX66_IN_68", "bp4d_landmark_path", "disfa_landmark_dir",
    "map49_to_68", "map66_to_68", "read_bp4d_landmarks", "read_disfa_landmarks", "select49_from_68",
    "select66_from_68", "write_bp4d_landmarks", "write_disfa_landmarks",
]

# 68-point index of each point of the smaller schemes (from JAA-Net's reflect_66.mat).
IDX66_IN_68: np.ndarray = np.array([*range(60), 61, 62, 63, 65, 66, 67])
IDX49_IN_68: np.ndarray = IDX66_IN_68[17:]
BP4D_ORIGIN = 1.0   # shipped pixel of the image's first pixel: MATLAB 1-based (JAA-Net face_transform.py)
DISFA_ORIGIN = 1.0  # assumed MATLAB 1-based as well (see module docstring)
_DISFA_NAME = re.compile(r"(\d+)_lm\.mat$")


def _expand(pts: np.ndarray, idx: np.ndarray, n_src: int) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64)
    if pts.shape[-2:] != (n_src, 2):
        raise ValueError(f"expected (..., {n_src}, 2) landmarks, got shape {pts.shape}")
    out = np.full((*pts.shape[:-2], 68, 2), np.nan)
    out[..., idx, :] = pts
    return out


def map49_to_68(pts49: np.ndarray) -> np.ndarray:
    """(…, 49, 2) → (…, 68, 2); the jaw and the four mouth points the 49 scheme lacks are NaN."""
    return _expand(pts49, IDX49_IN_68, 49)


def map66_to_68(pts66: np.ndarray) -> np.ndarray:
    """(…, 66, 2) → (…, 68, 2); the inner mouth corners 60 and 64 are NaN."""
    return _expand(pts66, IDX66_IN_68, 66)


def select49_from_68(pts68: np.ndarray) -> np.ndarray:
    """Inverse of :func:`map49_to_68`: the 49 points BP4D ships, (…, 68, 2) → (…, 49, 2)."""
    return np.asarray(pts68)[..., IDX49_IN_68, :]


def select66_from_68(pts68: np.ndarray) -> np.ndarray:
    """Inverse of :func:`map66_to_68`: the 66 points DISFA ships, (…, 68, 2) → (…, 66, 2)."""
    return np.asarray(pts68)[..., IDX66_IN_68, :]


def bp4d_landmark_path(root: str | os.PathLike, subject: str, task: str) -> Path:
    return Path(root) / "2DFeatures" / f"{subject}_{task}.mat"


def disfa_landmark_dir(root: str | os.PathLike, subject: str) -> Path:
    return Path(root) / "Landmark_Points" / subject / "tmp_frame_lm"


def _check_points(frames: Sequence[int], points68: np.ndarray) -> np.ndarray:
    points68 = np.asarray(points68, dtype=np.float64)
    if points68.ndim != 3 or points68.shape[1:] != (68, 2) or len(points68) != len(frames):
        raise ValueError(f"points68 must be (n_frames={len(frames)}, 68, 2), got {points68.shape}")
    if len(set(int(f) for f in frames)) != len(frames):
        raise ValueError("frames must be unique")
    return points68


def _savemat_atomic(path: Path, data: dict) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            scipy.io.savemat(fh, data, do_compression=True)

    atomic_write(path, write)


def write_bp4d_landmarks(root: str | os.PathLike, subject: str, task: str, frames: Sequence[int],
                         points68: np.ndarray) -> Path:
    """Write ``2DFeatures/{subject}_{task}.mat`` as BP4D ships it (49 points, 1-based, struct ``fit``).

    ``points68`` are 0-based pixels; a frame whose 49 points are all NaN gets an empty ``pred`` (a frame
    BP4D has no landmarks for). The file appears atomically or not at all.
    """
    points68 = _check_points(frames, points68)
    fit = np.empty((1, len(frames)), dtype=[("frame", object), ("pred", object)])
    for i, (frame, pts) in enumerate(zip(frames, points68, strict=True)):
        p49 = select49_from_68(pts)
        if np.isnan(p49).all():
            p49 = np.zeros((0, 0))
        elif not np.isfinite(p49).all():
            raise ValueError(f"frame {frame}: some of the 49 BP4D points are NaN (all or none may be)")
        else:
            p49 = p49 + BP4D_ORIGIN
        fit[0, i] = (np.array([[int(frame)]], dtype=np.float64), p49)
    path = bp4d_landmark_path(root, subject, task)
    _savemat_atomic(path, {"fit": fit})
    return path


def _loadmat(path: Path, fix: str) -> dict:
    if not path.is_file():
        raise InputError(f"landmark file {path} not found; {fix}")
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError as err:  # scipy: "Please use HDF reader for matlab v7.3 files"
        raise InputError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; re-save it as v7 "
                         f"(MATLAB: s = load(f); save(f, '-struct', 's', '-v7'))") from err
    except Exception as err:  # scipy raises MatReadError, ValueError, IndexError… on a damaged file
        raise InputError(f"{path} is not a readable MAT file ({err}); re-copy it from the dataset") from err


def read_bp4d_landmarks(root: str | os.PathLike, subject: str, task: str) -> dict[int, np.ndarray]:
    """Frame → (68, 2) 0-based pixels (NaN where the 49 scheme has no point); untracked frames omitted."""
    path = bp4d_landmark_path(root, subject, task)
    mat = _loadmat(path, "BP4D ships 2D landmarks as 2DFeatures/{subject}_{task}.mat: point --root at the "
                   "BP4D folder that contains 2DFeatures/, or use another landmark backend")
    fit = mat.get("fit")
    if fit is None or fit.dtype.names is None or "pred" not in fit.dtype.names:
        raise InputError(f"{path} has no struct variable 'fit' with field 'pred'; "
                         "is it a BP4D 2DFeatures file?")
    fit = fit.ravel()
    has_frame = "frame" in fit.dtype.names
    out: dict[int, np.ndarray] = {}
    for i, item in enumerate(fit):
        pred = np.asarray(item["pred"], dtype=np.float64)
        if pred.size == 0:
            continue
        if pred.shape != (49, 2):
            raise InputError(f"{path}: fit({i + 1}).pred has shape {pred.shape}, expected 49×2")
        frame = int(np.asarray(item["frame"]).ravel()[0]) if has_frame else i
        out[frame] = map49_to_68(pred - BP4D_ORIGIN)
    return out


def write_disfa_landmarks(root: str | os.PathLike, subject: str, frames: Sequence[int],
                          points68: np.ndarray) -> Path:
    """Write ``Landmark_Points/{SN}/tmp_frame_lm/{SN}_{k:04d}_lm.mat`` (key ``pts``, 66×2, 1-based).

    The whole directory is built beside the target and swapped in, so a failure leaves no partial set.
    """
    points68 = _check_points(frames, points68)
    target = disfa_landmark_dir(root, subject)
    with building_dir(target) as tmp:
        for frame, pts in zip(frames, points68, strict=True):
            p66 = select66_from_68(pts)
            if not np.isfinite(p66).all():
                raise ValueError(f"frame {frame}: the 66 DISFA points must all be finite")
            scipy.io.savemat(tmp / f"{subject}_{int(frame):04d}_lm.mat", {"pts": p66 + DISFA_ORIGIN})
    return target


def read_disfa_landmarks(root: str | os.PathLike, subject: str) -> dict[int, np.ndarray]:
    """0-based frame k → (68, 2) 0-based pixels (NaN at the inner mouth corners 60 and 64)."""
    folder = disfa_landmark_dir(root, subject)
    files = sorted(folder.glob("*_lm.mat")) if folder.is_dir() else []
    if not files:
        raise InputError(f"no DISFA landmark files *_lm.mat in {folder}; point --root at the DISFA folder "
                         "that contains Landmark_Points/, or use another landmark backend")
    out: dict[int, np.ndarray] = {}
    for path in files:
        match = _DISFA_NAME.search(path.name)
        if match is None:
            raise InputError(f"{path}: cannot read a frame number from the name (expected SN###_0000_lm.mat)")
        pts = np.asarray(_loadmat(path, "").get("pts", np.zeros(0)), dtype=np.float64)
        if pts.shape != (66, 2):
            raise InputError(f"{path}: key 'pts' must be 66×2, got {pts.shape}; re-copy it from DISFA")
        frame = int(match.group(1))
        if frame in out:
            raise InputError(f"{path}: frame {frame} appears twice in {folder}; remove the duplicate file")
        out[frame] = map66_to_68(pts - DISFA_ORIGIN)
    return out
