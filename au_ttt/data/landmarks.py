"""68-point landmark backends behind one interface, and the compact per-index landmark file.

Backends (all return 0-based (x, y) pixel points in the iBUG 68 layout, a score and a success flag):

- ``dlib``: HOG face detector + the 68-point shape predictor shipped by ``face_recognition_models``
  (measured: HOG detector 87–96 ms per 512² image on one CPU core, shape predictor 2–3 ms). FG-Net uses dlib
  68 points (ihp-lab/FG-Net README, "Data Structure").
- ``face_alignment``: 2D FAN (the paper-faithful choice). Its weights cannot be downloaded here, so we
  check for them under ``$TORCH_HOME/hub/checkpoints`` (where 1adrianb/face-alignment looks them up through
  ``torch.hub``) *before* the library tries.
- ``provided``: dataset-shipped landmarks via :mod:`au_ttt.data.landmark_files` (49/66-point schemes put
  NaN where a 68-point index has no counterpart).

A frame without a face is kept with ``success = False``; later steps exclude and count it. A frame whose
image cannot be decoded (missing, empty, truncated, not an image: :func:`au_ttt.data.images.read_image`)
is kept the same way, with the reason stored per row (``image_error``) and named in the report: one bad
file never stops the stage.

The landmark file is row-aligned with the frame index it was made for and records that index's hash (and,
for a shard, its subjects), so a later step refuses a file made for other rows. It is written
byte-deterministically (:func:`atomic_save_npz`): the same inputs give the same bytes, sharded or not.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from au_ttt.data.images import ImageError, read_image
from au_ttt.data.rowfiles import (
    atomic_save_npz,
    bad_image_summary,
    image_error_code,
    index_hash,
    read_subjects,
    stale_message,
    subjects_array,
)
from au_ttt.errors import InputError
from au_ttt.sections import LandmarkConfig  # the section: torch/numpy-free, with the others

__all__ = [
    "FAN_WEIGHTS", "S3FD_WEIGHTS", "DlibBackend", "FaceAlignmentBackend", "FrameLandmarks", "LandmarkConfig",
    "LandmarkSet", "atomic_save_npz", "bad_image_summary", "compare_landmarks", "detect_index",
    "dlib_model_path", "fan_checkpoint_dir", "index_hash", "landmark_frame", "landmarks_report",
    "load_landmarks", "make_backend", "provided_landmarks", "read_image", "run_backend", "save_landmarks",
]

log = logging.getLogger(__name__)

# File names face_alignment 1.5.0 looks up in torch.hub.get_dir()/checkpoints (1adrianb/face-alignment model URLs).
FAN_WEIGHTS = "2DFAN4-11f355bf06.pth.tar"
S3FD_WEIGHTS = "s3fd-619a316812.pth"
# Points that must be present for a usable face: both eyes (alignment and AU centres need them).
_EYES = np.arange(36, 48)


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
    image_error: np.ndarray = field(default=None)  # type: ignore[assignment]  # (N,) int8, 0 = image fine
    subjects: tuple[str, ...] | None = None        # the shard's subjects; None = the whole index
    settings: str = ""                             # the landmarks config section as sorted JSON

    def __post_init__(self) -> None:
        if self.image_error is None:
            self.image_error = np.zeros(len(self.success), np.int8)

    def report(self) -> dict[str, Any]:
        n, ok = len(self.success), int(self.success.sum())
        bad = int((self.image_error > 0).sum())
        return {"backend": self.backend, "frames": n, "detected": ok, "failed": n - ok,
                "no_face": n - ok - bad, "bad_images": bad, "detection_rate": ok / n if n else 0.0}


# --------------------------------------------------------------------------------------------- I/O
def landmarks_report(lms: LandmarkSet, index: pd.DataFrame) -> dict[str, Any]:
    """The stage report: counts, every frame excluded for a bad image (named), shard and settings.

    A pure function of the landmark file and its index, so a gathered file reports exactly what the
    unsharded run reports.
    """
    return {**lms.report(), **bad_image_summary(lms.image_error, index["image"]),
            "index_hash": lms.index_hash, "subjects": list(lms.subjects) if lms.subjects is not None else None,
            "config": json.loads(lms.settings) if lms.settings else None}


def save_landmarks(path: str | Path, lms: LandmarkSet) -> None:
    atomic_save_npz(path, points=lms.points.astype(np.float32), score=lms.score.astype(np.float32),
                    success=lms.success.astype(bool), image_error=lms.image_error.astype(np.int8),
                    index_hash=np.array(lms.index_hash), backend=np.array(lms.backend),
                    settings=np.array(lms.settings), **subjects_array(lms.subjects))


def load_landmarks(path: str | Path, index: pd.DataFrame | None = None) -> LandmarkSet:
    """Read a landmark file; with ``index``, refuse it when it was made for other rows."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: landmark file not found; create it with `au-ttt landmarks`")
    with np.load(path) as z:
        files = set(z.files)
        lms = LandmarkSet(z["points"], z["score"], z["success"], str(z["index_hash"]), str(z["backend"]),
                          z["image_error"] if "image_error" in files else None, read_subjects(z),
                          str(z["settings"]) if "settings" in files else "")
    if index is not None and lms.index_hash != index_hash(index):
        raise InputError(stale_message(path, "landmarks", lms.index_hash, lms.subjects, index,
                                       "rerun `au-ttt landmarks` with the same --index and --subjects"))
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


def require_fan_weights(detector: str) -> None:
    """Refuse before face_alignment tries to download: name the missing files and where they go."""
    ckpt = fan_checkpoint_dir()
    needed = [FAN_WEIGHTS] + ([S3FD_WEIGHTS] if detector == "sfd" else [])
    missing = [f for f in needed if not (ckpt / f).is_file()]
    if missing:
        raise InputError(
            f"face_alignment weights missing: place {', '.join(missing)} in {ckpt} (set TORCH_HOME to "
            "choose the folder; files from https://www.adrianbulat.com/downloads/python-fan/), or use "
            "--fa-detector dlib to skip S3FD, or --backend dlib")


def check_backend_files(cfg: LandmarkConfig) -> None:
    """The model files ``cfg``'s backend needs exist (cheap; does not load them)."""
    if cfg.backend in ("dlib", "face_alignment") and (cfg.backend == "dlib" or cfg.fa_detector == "dlib"):
        dlib_model_path()
    if cfg.backend == "face_alignment":
        require_fan_weights(cfg.fa_detector)


class FaceAlignmentBackend:
    """face_alignment 2D FAN; with ``detector='dlib'`` the dlib HOG box replaces S3FD."""

    name = "face_alignment"

    def __init__(self, device: str = "cpu", detector: str = "sfd", flip_input: bool = True,
                 compile: bool = False, dlib_upsample: int = 1) -> None:
        require_fan_weights(detector)
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


def landmark_frame(path: str | Path, backend: Callable[[np.ndarray], FrameLandmarks]
                   ) -> tuple[FrameLandmarks, int]:
    """One frame's landmarks and its image-error code; a bad image is a failed frame, not an exception."""
    try:
        image = read_image(path)
    except ImageError as err:
        log.debug("excluded: %s", err)
        return FrameLandmarks.failed(), image_error_code(err)
    return backend(image), 0


def _assemble(results: list[tuple[FrameLandmarks, int]], index: pd.DataFrame, name: str,
              settings: str = "") -> LandmarkSet:
    n = len(results)
    points = np.full((n, 68, 2), np.nan, np.float32)
    score, success, errors = np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, np.int8)
    for i, (res, code) in enumerate(results):
        points[i], score[i], success[i], errors[i] = res.points, res.score, res.success, code
    return LandmarkSet(points, score, success, index_hash(index), name, errors,
                       index.attrs.get("subjects"), settings)


def run_backend(index: pd.DataFrame, root: str | Path, backend: Callable[[np.ndarray], FrameLandmarks],
                name: str, progress: bool = True, settings: str = "") -> LandmarkSet:
    """Run an image backend on every index row (images at ``root / row.image``), in this process."""
    from tqdm import tqdm

    images = tqdm(index["image"].tolist(), desc=f"landmarks ({name})", disable=not progress)
    return _assemble([landmark_frame(Path(root) / rel, backend) for rel in images], index, name, settings)


_WORKER_BACKEND: Callable[[np.ndarray], FrameLandmarks] | None = None


def _init_worker(cfg: LandmarkConfig) -> None:
    global _WORKER_BACKEND
    _WORKER_BACKEND = make_backend(cfg)


def _detect_chunk(paths: list[str]) -> list[tuple[FrameLandmarks, int]]:
    assert _WORKER_BACKEND is not None
    return [landmark_frame(p, _WORKER_BACKEND) for p in paths]


def config_json(cfg: LandmarkConfig) -> str:
    return json.dumps(asdict(cfg), sort_keys=True)


def detect_index(index: pd.DataFrame, root: str | Path, cfg: LandmarkConfig, workers: int = 0,
                 progress: bool = True, chunk: int = 64) -> LandmarkSet:
    """:func:`run_backend` with ``cfg``'s backend, over ``workers`` processes when ≥ 2 (dlib is
    single-threaded: a raw BP4D frame takes ~0.1–0.5 s, so 146k frames want several cores); 0 or 1 runs
    in this process (a pool of one would only add a process).

    Workers die with this process (kill -9, SIGTERM, Ctrl-C): :mod:`au_ttt.data.workers`.
    """
    settings = config_json(cfg)
    if len(index) == 0:      # an empty shard: no detector to load
        return _assemble([], index, cfg.backend, settings)
    if workers <= 1:
        return run_backend(index, root, make_backend(cfg), cfg.backend, progress, settings)
    from tqdm import tqdm

    from au_ttt.data.workers import worker_pool

    check_backend_files(cfg)             # a missing model file: one clear error here, not one per worker
    paths = [str(Path(root) / rel) for rel in index["image"].tolist()]
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    results: list[tuple[FrameLandmarks, int]] = []
    desc = f"landmarks ({cfg.backend}, {workers} processes)"
    with worker_pool(workers, _init_worker, (cfg,)) as pool, \
            tqdm(total=len(paths), desc=desc, disable=not progress) as bar:
        for part in pool.map(_detect_chunk, chunks):   # map keeps the row order
            results.extend(part)
            bar.update(len(part))
    return _assemble(results, index, cfg.backend, settings)


# ------------------------------------------------------------------------------------------ provided
def _usable(points: np.ndarray) -> bool:
    """Eyes present and ≥ 20 finite non-jaw points: enough for the similarity fit and AU centres."""
    finite = np.isfinite(points).all(1)
    return bool(finite[_EYES].all() and finite[17:].sum() >= 20)


def provided_landmarks(index: pd.DataFrame, dataset_root: str | Path, progress: bool = True,
                       settings: str = "") -> LandmarkSet:
    """Dataset-shipped landmarks for each index row; frames without a file entry get success = False.

    No image is read here (``crops`` reads and checks them), so ``image_error`` stays 0.
    """
    from tqdm import tqdm

    from au_ttt.datasets import registry

    n = len(index)
    points = np.full((n, 68, 2), np.nan, np.float32)
    success = np.zeros(n, bool)
    groups = index.groupby(["dataset", "subject", "sequence"], sort=False).indices
    for (dataset, subject, seq), rows in tqdm(groups.items(), desc="landmarks (provided)",
                                               disable=not progress):
        spec = registry.get(dataset)
        if spec.landmark_reader is None:
            have = sorted(n for n in registry.names() if registry.get(n).landmark_reader)
            raise InputError(f"no shipped-landmark reader for dataset {dataset!r} (have {have}); "
                             "use --backend dlib or face_alignment")
        table = spec.landmarks(dataset_root, subject, seq)
        frames = index["frame"].to_numpy()[rows]
        for r, frame in zip(rows, frames, strict=True):
            pts = table.get(int(frame)) if not isinstance(frame, str) else table.get(frame)
            if pts is not None:
                points[r] = pts
                success[r] = _usable(points[r])
    return LandmarkSet(points, success.astype(np.float32), success, index_hash(index), "provided",
                       subjects=index.attrs.get("subjects"), settings=settings)


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
