"""Similarity-aligned face crops: landmarks → canonical 68-point template → square crop (256 px default).

Geometry follows FG-Net's FFHQ-style ``image_align`` (ihp-lab/SEMPI data/engagement/code/utils.py, which the FG-Net
maintainer names as the BP4D/DISFA cropping code in ihp-lab/FG-Net issue #3): the crop side is
2·max(2·|eye-to-eye|, 1.8·|eye-to-mouth|) and its centre is the eye midpoint moved 0.1·eye-to-mouth towards
the mouth — evaluated once on the template, so every frame lands on the same canonical layout. Instead of
FFHQ's 3-point construction we fit a least-squares similarity (Umeyama) to all finite non-jaw points
(brows, nose, eyes, mouth: indices 17–67), which tolerates the NaN jaw of 49/66-point datasets.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from au_ttt.data.images import ImageError, read_image
from au_ttt.data.landmarks import LandmarkSet
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
from au_ttt.fileio import atomic_write_json, building_dir
from au_ttt.sections import AlignConfig  # the section: torch/numpy-free, with the others

__all__ = [
    "ALIGNED_FILE", "ALIGN_POINTS", "CROP_STATUS", "REPORT_FILE", "TEMPLATE_68", "AlignConfig", "AlignedSet",
    "align_face", "crop_path", "crops_report", "estimate_similarity", "load_aligned", "save_aligned",
    "template_points", "write_crops",
]

# Canonical 68-point shape, eye centres at (∓0.5, 0), unit eye-centre distance, y down. Derived once from
# dlib's 68 points on skimage.data.astronaut(): averaged with its own mirror image (MIRROR_68), rotated so
# the eyes are level, then made exactly left-right symmetric. (The mouth is a little wide: she smiles.)
TEMPLATE_68 = np.array([
    (-1.0720, 0.0720), (-1.0375, 0.3487), (-1.0030, 0.6023), (-0.9570, 0.8795), (-0.8650, 1.1338),
    (-0.7149, 1.3529), (-0.4964, 1.5375), (-0.2651, 1.6998), (0.0000, 1.7349), (0.2651, 1.6998),
    (0.4964, 1.5375), (0.7149, 1.3529), (0.8650, 1.1338), (0.9570, 0.8795), (1.0030, 0.6023),
    (1.0375, 0.3487), (1.0720, 0.0720), (-0.9116, -0.1465), (-0.7845, -0.2966), (-0.6005, -0.3196),
    (-0.4153, -0.2966), (-0.2306, -0.2391), (0.2306, -0.2391), (0.4153, -0.2966), (0.6005, -0.3196),
    (0.7845, -0.2966), (0.9116, -0.1465), (0.0000, -0.0206), (0.0000, 0.1877), (0.0000, 0.3717),
    (0.0000, 0.5557), (-0.2306, 0.6604), (-0.1150, 0.6949), (0.0000, 0.7179), (0.1150, 0.6949),
    (0.2306, 0.6604), (-0.6925, 0.0036), (-0.5763, -0.0884), (-0.4153, -0.0884), (-0.2887, 0.0502),
    (-0.4389, 0.0611), (-0.5884, 0.0617), (0.2887, 0.0502), (0.4153, -0.0884), (0.5763, -0.0884),
    (0.6925, 0.0036), (0.5884, 0.0617), (0.4389, 0.0611), (-0.5188, 0.8565), (-0.3341, 0.8450),
    (-0.1386, 0.8444), (0.0000, 0.8789), (0.1386, 0.8444), (0.3341, 0.8450), (0.5188, 0.8565),
    (0.3456, 1.0987), (0.1495, 1.2028), (0.0000, 1.2264), (-0.1495, 1.2028), (-0.3456, 1.0987),
    (-0.4492, 0.8910), (-0.1380, 0.9249), (0.0000, 0.9492), (0.1380, 0.9249), (0.4492, 0.8910),
    (0.1380, 1.0872), (0.0000, 1.1102), (-0.1380, 1.0872),
], dtype=np.float64)
ALIGN_POINTS = np.arange(17, 68)  # brows, nose, eyes, mouth: the jaw is often missing or unreliable
_MIN_POINTS = 8


def template_points(cfg: AlignConfig = AlignConfig()) -> np.ndarray:
    """The template placed in the crop (68, 2), 0-based pixel coordinates."""
    mouth = (TEMPLATE_68[48] + TEMPLATE_68[54]) / 2   # eye midpoint is the origin
    e2m = float(np.linalg.norm(mouth))
    scale = cfg.size / (2 * max(cfg.eye_to_eye * 1.0, cfg.eye_to_mouth * e2m))
    centre = np.array([0.0, cfg.em_shift * e2m])
    return (TEMPLATE_68 - centre) * scale + (cfg.size - 1) / 2


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """2×3 least-squares similarity (rotation, uniform scale, shift) mapping src → dst (Umeyama 1991).

    Rows with a NaN in either set are ignored; None when fewer than 8 usable points remain.
    """
    ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
    if ok.sum() < _MIN_POINTS:
        return None
    s, d = src[ok].astype(np.float64), dst[ok].astype(np.float64)
    ms, md = s.mean(0), d.mean(0)
    a, b = s - ms, d - md
    u, sv, vt = np.linalg.svd(b.T @ a)
    sign = np.array([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ np.diag(sign) @ vt
    scale = float((sv * sign).sum() / (a**2).sum())
    return np.hstack([scale * rot, (md - scale * rot @ ms)[:, None]])


def align_face(image: np.ndarray, points: np.ndarray, cfg: AlignConfig = AlignConfig()
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Warp ``image`` so its landmarks match the template: (crop (S, S, 3), aligned points (68, 2), M 2×3).

    Returns None when the landmarks do not allow a fit (fewer than 8 finite non-jaw points).
    Border: reflected, like FFHQ's padding, so random crops never see a black frame.
    """
    import cv2

    m = estimate_similarity(points[ALIGN_POINTS], template_points(cfg)[ALIGN_POINTS])
    if m is None:
        return None
    crop = cv2.warpAffine(image, m, (cfg.size, cfg.size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)
    aligned = points.astype(np.float64) @ m[:, :2].T + m[:, 2]
    return crop, aligned.astype(np.float32), m.astype(np.float32)


# ------------------------------------------------------------------------------------------ crop store
# Layout of a crops directory (one per dataset/landmark set, or per shard):
#   images/<index image path, suffix .jpg>   aligned crops, JPEG
#   aligned.npz   points (N, 68, 2) float32 aligned landmarks (NaN where skipped), valid (N,) bool,
#                 matrix (N, 2, 3) float32 source → crop similarity, status (N,) int8 (CROP_STATUS),
#                 image_error (N,) int8 (au_ttt.data.images.IMAGE_ERRORS, 1-based; 0 = fine), index_hash,
#                 size, settings (crops config, JSON) and, for a shard, subjects
#   crops.report.json   counts, every frame excluded for a bad image by name, shard, settings
# The folder is built beside its target and renamed into place (au_ttt.fileio.building_dir), report
# included, so a killed run leaves the previous complete store or none, never old and new crops mixed.
ALIGNED_FILE = "aligned.npz"
REPORT_FILE = "crops.report.json"
CROP_STATUS: tuple[str, ...] = ("written", "skipped_no_landmarks", "skipped_no_fit", "skipped_bad_image")


@dataclass
class AlignedSet:
    points: np.ndarray   # (N, 68, 2) float32
    valid: np.ndarray    # (N,) bool
    matrix: np.ndarray   # (N, 2, 3) float32
    index_hash: str
    size: int
    status: np.ndarray = field(default=None)       # type: ignore[assignment]  # (N,) int8 CROP_STATUS code
    image_error: np.ndarray = field(default=None)  # type: ignore[assignment]  # (N,) int8, 0 = image fine
    subjects: tuple[str, ...] | None = None
    settings: str = ""

    def __post_init__(self) -> None:
        n = len(self.valid)
        if self.status is None:
            self.status = np.where(self.valid, 0, 1).astype(np.int8)
        if self.image_error is None:
            self.image_error = np.zeros(n, np.int8)


def crop_path(crops_dir: str | Path, image: str) -> Path:
    """Where the crop of an index row's ``image`` lives."""
    return Path(crops_dir) / "images" / Path(image).with_suffix(".jpg")


def crops_report(aligned: AlignedSet, index: pd.DataFrame) -> dict[str, Any]:
    """Counts per outcome and every bad-image exclusion by name (a pure function: gather reproduces it)."""
    counts = {"frames": len(aligned.valid),
              **{name: int((aligned.status == code).sum()) for code, name in enumerate(CROP_STATUS)}}
    return {**counts, **bad_image_summary(aligned.image_error, index["image"]), "index_hash": aligned.index_hash,
            "subjects": list(aligned.subjects) if aligned.subjects is not None else None,
            "config": json.loads(aligned.settings) if aligned.settings else None}


def save_aligned(crops_dir: Path, aligned: AlignedSet, index: pd.DataFrame) -> dict[str, Any]:
    """Write ``aligned.npz`` and ``crops.report.json`` into ``crops_dir``; returns the report."""
    atomic_save_npz(crops_dir / ALIGNED_FILE, points=aligned.points, valid=aligned.valid, matrix=aligned.matrix,
                    status=aligned.status, image_error=aligned.image_error,
                    index_hash=np.array(aligned.index_hash), size=np.array(aligned.size),
                    settings=np.array(aligned.settings), **subjects_array(aligned.subjects))
    report = crops_report(aligned, index)
    atomic_write_json(crops_dir / REPORT_FILE, report)
    return report


def write_crops(index: pd.DataFrame, root: str | Path, lms: LandmarkSet, out_dir: str | Path,
                cfg: AlignConfig = AlignConfig(), progress: bool = True) -> dict[str, Any]:
    """Align every row with landmarks; build the crop store atomically; return its report.

    A frame is skipped (counted, and named when its image is bad) when it has no landmarks, the landmarks
    allow no fit, or its image cannot be decoded — here or already in the landmark stage.
    """
    import cv2
    from tqdm import tqdm

    if lms.index_hash != index_hash(index):
        raise InputError("landmarks were made for a different frame index or shard; rerun `au-ttt landmarks` "
                         "with the same --index and --subjects")
    n = len(index)
    aligned = AlignedSet(np.full((n, 68, 2), np.nan, np.float32), np.zeros(n, bool),
                         np.full((n, 2, 3), np.nan, np.float32), lms.index_hash, cfg.size,
                         np.zeros(n, np.int8), lms.image_error.astype(np.int8).copy(),
                         index.attrs.get("subjects"), json.dumps(asdict(cfg), sort_keys=True))
    status = {name: code for code, name in enumerate(CROP_STATUS)}
    with building_dir(out_dir) as tmp:
        made: set[Path] = set()
        for i, rel in enumerate(tqdm(index["image"].tolist(), desc="crops", disable=not progress)):
            if aligned.image_error[i]:
                aligned.status[i] = status["skipped_bad_image"]
                continue
            if not lms.success[i]:
                aligned.status[i] = status["skipped_no_landmarks"]
                continue
            try:
                image = read_image(Path(root) / rel)
            except ImageError as err:
                aligned.image_error[i] = image_error_code(err)
                aligned.status[i] = status["skipped_bad_image"]
                continue
            res = align_face(image, lms.points[i], cfg)
            if res is None:
                aligned.status[i] = status["skipped_no_fit"]
                continue
            crop, aligned.points[i], aligned.matrix[i] = res
            target = crop_path(tmp, rel)
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            if not cv2.imwrite(str(target), crop[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]):
                raise InputError(f"{target}: cannot write the crop (disk full or no permission?)")
            aligned.valid[i] = True
        (tmp / "images").mkdir(exist_ok=True)
        report = save_aligned(tmp, aligned, index)
    return report


def load_aligned(crops_dir: str | Path, index: pd.DataFrame | None = None) -> AlignedSet:
    """Read ``aligned.npz``; with ``index``, refuse a store made for other rows."""
    path = Path(crops_dir) / ALIGNED_FILE
    if not path.is_file():
        raise InputError(f"{path}: not found; make the crops with `au-ttt crops --out {crops_dir}`")
    with np.load(path) as z:
        files = set(z.files)
        out = AlignedSet(z["points"], z["valid"], z["matrix"], str(z["index_hash"]), int(z["size"]),
                         z["status"] if "status" in files else None,
                         z["image_error"] if "image_error" in files else None, read_subjects(z),
                         str(z["settings"]) if "settings" in files else "")
    if index is not None and out.index_hash != index_hash(index):
        raise InputError(stale_message(path, "crop store", out.index_hash, out.subjects, index,
                                       "rerun `au-ttt landmarks` and `au-ttt crops` with the same --index and "
                                       "--subjects"))
    return out
