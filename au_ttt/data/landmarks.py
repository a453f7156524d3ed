"""68-point landmark backends behind one interface, and the compact per-index landmark file.

Backends (all return 0-based (x, y) pixel points in the iBUG 68 layout, a score and a success flag):

- ``dlib``: HOG face detector + the 68-point shape predictor shipped by ``face_recognition_models``
  (environment.md §4: 87–96 ms per 512² image on CPU). FG-Net uses dlib 68 points (protocol.md §2.3).
- ``face_alignment``: 2D FAN (the paper-faithful choice). Its weights cannot be downloaded here, so we
  check for them under ``$TORCH_HOME/hub/checkpoints`` *before* the library tries (environment.md §3).
- ``provided``: dataset-shipped landmarks via :mod:`au_ttt.data.landmark_files` (49/66-point schemes put
  NaN where a 68-point index has no counterpart).

A frame without a face is kept with ``success = False``; later steps exclude and count it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write

__all__ = [
    "FAN_WEIGHTS", "S3FD_WEIGHTS", "DlibBackend", "FaceAlignmentBackend", "FrameLandmarks", "LandmarkConfig",
    "LandmarkSet", "atomic_save_npz", "compare_landmarks", "detect_index",
    "dlib_model_path", "fan_checkpoint_dir", "index_hash", "load_landmarks", "make_backend",
    "provided_landmarks", "read_image", "run_backend", "save_landmarks",
]

Backend = Literal["dlib", "face_alignment", "provided"]
INDEX_KEY_COLUMNS = ("dataset", "subject", "sequence", "frame", "image")
# File names face_alignment 1.5.0 looks up in torch.hub.get_dir()/checkpoints (environment.md §3).
FAN_WEIGHTS = "2DFAN4-11f355bf06.pth.tar"
S3FD_WEIGHTS = "s3fd-619a316812.pth"
# Points that must be present for a usable face: both eyes (alignment and AU centres need them).
_EYES = np.arange(36, 48)


@dataclass(frozen=True)
class LandmarkConfig:
    """Section ``landmarks`` of config.yaml."""

    backend: Backend = "dlib"              # dlib: offline weights; face_alignment needs FAN weights placed
    dlib_upsample: int = 1                 # HOG upsampling; 1 finds 80×80 faces (environment.md §4)
    fa_detector: Literal["sfd", "dlib"] = "sfd"  # face_alignment's default detector is S3FD
    fa_flip_input: bool = True             # face_alignment 1.5.0 default (averages a mirrored pass)
    fa_compile: bool = False               # torch.compile costs 55 s on CPU for 8% speed (environment.md §3)
    device: str = "cpu"


@dataclass(frozen=True)
class FrameLandmarks:
    """One frame's result: points (68, 2) float32 (NaN when unknown), detector score, success."""

    points: np.ndarray
    score: float
    success: bool

    @staticmethod
    def failed() -> FrameLandmarks:
        return FrameLandmarks(np.full((68, 2), np.nan, np.float32), 0.0, False)


@dataclass
class LandmarkSet:
    """Landmarks for every row of a frame index (row i ↔ index row i)."""

    points: np.ndarray   # (N, 68, 2) float32
    score: np.ndarray    # (N,) float32
    success: np.ndarray  # (N,) bool
    index_hash: str
    backend: str

    def report(self) -> dict[str, float | int | str]:
        n, ok = len(self.success), int(self.success.sum())
        return {"backend": self.backend, "frames": n, "detected": ok, "failed": n - ok,
                "detection_rate": ok / n if n else 0.0}


# --------------------------------------------------------------------------------------------- I/O
def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3); an unreadable or missing file is an :class:`InputError` naming it."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: cannot read image (missing, truncated or not an image); "
                         "check --root and the index's image column, or re-extract the frame")
    return np.ascontiguousarray(img[:, :, ::-1])


def index_hash(index: pd.DataFrame) -> str:
    """Hash of the index's row identity, stored in every per-row file so that a stale file is refused."""
    missing = [c for c in INDEX_KEY_COLUMNS if c not in index.columns]
    if missing:
        raise InputError(f"frame index lacks columns {missing}; rebuild it with `au-ttt data index`")
    # per-row 64-bit hashes of the key columns as text (so int32/int64 frame dtypes hash alike), then sha256
    rows = pd.util.hash_pandas_object(index.loc[:, list(INDEX_KEY_COLUMNS)].astype(str), index=False)
    return hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()[:16]


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """np.savez through :func:`au_ttt.fileio.atomic_write` (no half-written outputs)."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)

    atomic_write(path, write)


def save_landmarks(path: str | Path, lms: LandmarkSet) -> None:
    atomic_save_npz(path, points=lms.points.astype(np.float32), score=lms.score.astype(np.float32),
                    success=lms.success.astype(bool), index_hash=np.array(lms.index_hash),
                    backend=np.array(lms.backend))


def load_landmarks(path: str | Path, index: pd.DataFrame | None = None) -> LandmarkSet:
    """Read a landmark file; with ``index``, refuse it when it was made for other rows."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: landmark file not found; create it with `au-ttt landmarks`")
    with np.load(path) as z:
        lms = LandmarkSet(z["points"], z["score"], z["success"], str(z["index_hash"]), str(z["backend"]))
    if index is not None and lms.index_hash != index_hash(index):
        raise InputError(f"{path}: made for a different frame index (hash {lms.index_hash} ≠ "
                         f"{index_hash(index)}); rerun `au-ttt landmarks` on the current index")
    return lms


# ----------------------------------------------------------------------------------------- backends
def dlib_model_path(name: str = "shape_predictor_68_face_landmarks.dat") -> Path:
    """A face_recognition_models file, found without importing it (the import needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise InputError("package face_recognition_models is not installed; `pip install "
                         "face_recognition_models==0.3.0` (it ships the dlib 68-point model)")
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise InputError(f"{path}: dlib model missing; reinstall face_recognition_models")
    return path


class DlibBackend:
    """dlib HOG detector (highest-scoring face kept) + 68-point shape predictor."""

    name = "dlib"

    def __init__(self, upsample: int = 1) -> None:
        import dlib

        self.upsample = upsample
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(dlib_model_path()))

    def detect(self, image: np.ndarray) -> tuple[list[float], float] | None:
        """Best face box [x1, y1, x2, y2] and its HOG score, or None."""
        rects, scores, _ = self.detector.run(image, self.upsample, 0.0)
        if not rects:
            return None
        k = int(np.argmax(scores))
        r = rects[k]
        return [r.left(), r.top(), r.right(), r.bottom()], float(scores[k])

    def __call__(self, image: np.ndarray) -> FrameLandmarks:
        import dlib

        found = self.detect(image)
        if found is None:
            return FrameLandmarks.failed()
        (x1, y1, x2, y2), score = found
        shape = self.predictor(image, dlib.rectangle(x1, y1, x2, y2))
        pts = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
        return FrameLandmarks(pts, score, True)


def fan_checkpoint_dir() -> Path:
    """Where face_alignment looks for weights: ``$TORCH_HOME/hub/checkpoints``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


class FaceAlignmentBackend:
    """face_alignment 2D FAN; with ``detector='dlib'`` the dlib HOG box replaces S3FD."""

    name = "face_alignment"

    def __init__(self, device: str = "cpu", detector: str = "sfd", flip_input: bool = True,
                 compile: bool = False, dlib_upsample: int = 1) -> None:
        ckpt = fan_checkpoint_dir()
        needed = [FAN_WEIGHTS] + ([S3FD_WEIGHTS] if detector == "sfd" else [])
        missing = [f for f in needed if not (ckpt / f).is_file()]
        if missing:
            raise InputError(
                f"face_alignment weights missing: place {', '.join(missing)} in {ckpt} (set TORCH_HOME to "
                "choose the folder; files from https://www.adrianbulat.com/downloads/python-fan/), or use "
                "--fa-detector dlib to skip S3FD, or --backend dlib")
        import face_alignment

        self.dlib = DlibBackend(dlib_upsample) if detector == "dlib" else None
        self.fa = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, device=device, flip_input=flip_input, compile=compile,
            face_detector="folder" if detector == "dlib" else "sfd")

    def __call__(self, image: np.ndarray) -> FrameLandmarks:
        if self.dlib is not None:
            found = self.dlib.detect(image)
            if found is None:
                return FrameLandmarks.failed()
            boxes = [np.array([*found[0], found[1]], np.float64)]
        else:
            boxes = self.fa.face_detector.detect_from_image(image.copy())
            if len(boxes) == 0:
                return FrameLandmarks.failed()
            boxes = [max(boxes, key=lambda b: float(b[4]))]
        pts = self.fa.get_landmarks_from_image(image, detected_faces=boxes)
        if not pts:
            return FrameLandmarks.failed()
        return FrameLandmarks(np.asarray(pts[0], np.float32)[:, :2], float(boxes[0][4]), True)


def make_backend(cfg: LandmarkConfig) -> Callable[[np.ndarray], FrameLandmarks]:
    if cfg.backend == "dlib":
        return DlibBackend(cfg.dlib_upsample)
    if cfg.backend == "face_alignment":
        return FaceAlignmentBackend(cfg.device, cfg.fa_detector, cfg.fa_flip_input, cfg.fa_compile,
                                    cfg.dlib_upsample)
    raise InputError(f"backend {cfg.backend!r} is not image-based; use provided_landmarks() for 'provided'")


def run_backend(index: pd.DataFrame, root: str | Path, backend: Callable[[np.ndarray], FrameLandmarks],
                name: str, progress: bool = True) -> LandmarkSet:
    """Run an image backend on every index row (images at ``root / row.image``), in this process."""
    from tqdm import tqdm

    n = len(index)
    points = np.full((n, 68, 2), np.nan, np.float32)
    score, success = np.zeros(n, np.float32), np.zeros(n, bool)
    for i, rel in enumerate(tqdm(index["image"].tolist(), desc=f"landmarks ({name})", disable=not progress)):
        res = backend(read_image(Path(root) / rel))
        points[i], score[i], success[i] = res.points, res.score, res.success
    return LandmarkSet(points, score, success, index_hash(index), name)


_WORKER_BACKEND: Callable[[np.ndarray], FrameLandmarks] | None = None


def _init_worker(cfg: LandmarkConfig) -> None:
    global _WORKER_BACKEND
    _WORKER_BACKEND = make_backend(cfg)


def _detect_chunk(paths: list[str]) -> list[FrameLandmarks]:
    assert _WORKER_BACKEND is not None
    return [_WORKER_BACKEND(read_image(p)) for p in paths]


def detect_index(index: pd.DataFrame, root: str | Path, cfg: LandmarkConfig, workers: int = 0,
                 progress: bool = True, chunk: int = 64) -> LandmarkSet:
    """:func:`run_backend` with ``cfg``'s backend, over ``workers`` processes when > 0 (dlib is
    single-threaded: a raw BP4D frame takes ~0.1–0.5 s, so 146k frames want several cores)."""
    if workers <= 0:
        return run_backend(index, root, make_backend(cfg), cfg.backend, progress)
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    paths = [str(Path(root) / rel) for rel in index["image"].tolist()]
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    results: list[FrameLandmarks] = []
    desc = f"landmarks ({cfg.backend}, {workers} processes)"
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(cfg,)) as pool, \
            tqdm(total=len(paths), desc=desc, disable=not progress) as bar:
        for part in pool.map(_detect_chunk, chunks):   # map keeps the row order
            results.extend(part)
            bar.update(len(part))
    return LandmarkSet(np.stack([r.points for r in results]).astype(np.float32),
                       np.array([r.score for r in results], np.float32),
                       np.array([r.success for r in results], bool), index_hash(index), cfg.backend)


# ------------------------------------------------------------------------------------------ provided
def _usable(points: np.ndarray) -> bool:
    """Eyes present and ≥ 20 finite non-jaw points: enough for the similarity fit and AU centres."""
    finite = np.isfinite(points).all(1)
    return bool(finite[_EYES].all() and finite[17:].sum() >= 20)


def provided_landmarks(index: pd.DataFrame, dataset_root: str | Path, progress: bool = True) -> LandmarkSet:
    """Dataset-shipped landmarks for each index row; frames without a file entry get success = False."""
    from tqdm import tqdm

    from au_ttt.data import landmark_files

    readers = {
        "bp4d": lambda subject, seq: landmark_files.read_bp4d_landmarks(dataset_root, subject, seq),
        "disfa": lambda subject, seq: landmark_files.read_disfa_landmarks(dataset_root, subject),
    }
    n = len(index)
    points = np.full((n, 68, 2), np.nan, np.float32)
    success = np.zeros(n, bool)
    groups = index.groupby(["dataset", "subject", "sequence"], sort=False).indices
    for (dataset, subject, seq), rows in tqdm(groups.items(), desc="landmarks (provided)",
                                               disable=not progress):
        if dataset not in readers:
            raise InputError(f"no shipped-landmark reader for dataset {dataset!r} (have {sorted(readers)}); "
                             "use --backend dlib or face_alignment")
        table = readers[dataset](subject, seq)
        frames = index["frame"].to_numpy()[rows]
        for r, frame in zip(rows, frames, strict=True):
            pts = table.get(int(frame)) if not isinstance(frame, str) else table.get(frame)
            if pts is not None:
                points[r] = pts
                success[r] = _usable(points[r])
    return LandmarkSet(points, success.astype(np.float32), success, index_hash(index), "provided")


# ------------------------------------------------------------------------------------------ comparison
def compare_landmarks(pred: LandmarkSet, ref: LandmarkSet) -> dict[str, float | int]:
    """Detection rate and NME of ``pred`` against ground truth ``ref`` (same index rows).

    NME normalisation: the outer-eye-corner distance ‖p36 − p45‖ of the reference (300-W "inter-ocular"
    convention), averaged over the points finite in both. Only rows with a usable reference count.
    """
    if pred.index_hash != ref.index_hash:
        raise InputError("the two landmark files were made for different frame indexes; rerun one of them")
    has_ref = ref.success & np.isfinite(ref.points[:, [36, 45]]).all((1, 2))
    both = has_ref & pred.success
    nme = np.full(len(both), np.nan)
    for i in np.flatnonzero(both):
        err = np.linalg.norm(pred.points[i] - ref.points[i], axis=1)
        norm = np.linalg.norm(ref.points[i, 36] - ref.points[i, 45])
        nme[i] = np.nanmean(err) / norm
    vals = nme[both]
    return {
        "frames_with_reference": int(has_ref.sum()),
        "detected": int(both.sum()),
        "detection_rate": float(both.sum() / max(int(has_ref.sum()), 1)),
        "nme_mean": float(vals.mean()) if vals.size else float("nan"),
        "nme_median": float(np.median(vals)) if vals.size else float("nan"),
        "nme_p90": float(np.percentile(vals, 90)) if vals.size else float("nan"),
        "failure_rate_nme_gt_0.10": float((vals > 0.10).mean()) if vals.size else float("nan"),
        "normalisation": "outer eye corners |p36-p45| of the reference",
    }
