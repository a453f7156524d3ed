"""Format replicas of BP4D and DISFA for tests: tiny files laid out exactly as the datasets ship them.

BP4D: ``AUCoding/AU_OCC/{subject}_{task}.csv`` (header '0','1','2',… with extra AUs) and
``{subject}/{task}/{frame}.jpg``. DISFA: ``ActionUnit_Labels/SN###/SN###_au{N}.txt`` (``frame,intensity``
lines, frame numbers 1-based as shipped) and ``Videos_LeftCamera/LeftVideoSN###_comp.avi`` (MJPG).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# more AUs than the 12 evaluated, to check column selection (re-exported: tests import it from here)
from au_ttt.data.protocol import BP4D_CSV_AUS as BP4D_CSV_AUS


def write_bp4d_csv(root: Path, subject: str, task: str, frames: Sequence[int],
                   labels: Mapping[int, Sequence[int]], columns: Sequence[int] = BP4D_CSV_AUS) -> Path:
    """One AU_OCC CSV; AUs absent from ``labels`` are written as 0, AUs absent from ``columns`` omitted."""
    path = root / "AUCoding" / "AU_OCC" / f"{subject}_{task}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [",".join(["0", *map(str, columns)])]
    for i, frame in enumerate(frames):
        rows.append(",".join([str(frame), *(str(labels.get(au, [0] * len(frames))[i]) for au in columns)]))
    path.write_text("\n".join(rows) + "\n")
    return path


def write_images(folder: Path, names: Sequence[int | str], size: tuple[int, int] = (8, 6)) -> None:
    """Tiny grey JPEGs ``{name}.jpg`` (BP4D frames or DISFA decoded frames)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / f"{name}.jpg"), np.full((size[1], size[0], 3), 128, np.uint8))


def write_disfa_labels(root: Path, subject: str, intensities: Mapping[int, Sequence[int]]) -> Path:
    """``SN###_au{N}.txt`` per AU given, one ``frame,intensity`` line per frame (frame 1-based)."""
    folder = root / "ActionUnit_Labels" / subject
    folder.mkdir(parents=True, exist_ok=True)
    for au, values in intensities.items():
        lines = [f"{t + 1},{v}" for t, v in enumerate(values)]
        (folder / f"{subject}_au{au}.txt").write_text("\n".join(lines) + "\n")
    return folder


def disfa_video_path(root: Path, subject: str) -> Path:
    return root / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi"


def write_disfa_video(root: Path, subject: str, n_frames: int, size: tuple[int, int] = (32, 24)) -> Path:
    """An MJPG AVI whose frame t is uniformly grey at level 20·t, so the decoded order can be checked."""
    import cv2

    path = disfa_video_path(root, subject)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    assert writer.isOpened(), "OpenCV cannot write MJPG AVI here"
    for t in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), min(20 * t, 255), np.uint8))
    writer.release()
    return path


def write_corrupt_video(root: Path, subject: str, payload: bytes = b"RIFF\x00\x00garbage" * 64) -> Path:
    path = disfa_video_path(root, subject)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def write_bp4d_replica(root: Path, subjects: Sequence[str] | None = None, tasks: Sequence[str] = ("T1",),
                       frames: Sequence[int] = (10, 11)) -> list[Path]:
    """A complete tiny BP4D copy: every published subject (default) × ``tasks`` × ``frames``, CSV + JPEG each.

    Labels alternate 0/1 per frame and AU; returns the CSV paths.
    """
    from au_ttt.data.protocol import BP4D_PARTS

    subjects = [s for p in BP4D_PARTS.values() for s in p] if subjects is None else subjects
    paths = []
    for subject in subjects:
        for task in tasks:
            labels = {au: [(i + au) % 2 for i in range(len(frames))] for au in BP4D_CSV_AUS}
            paths.append(write_bp4d_csv(root, subject, task, frames, labels))
            write_images(root / subject / task, frames)
    return paths


def write_disfa_replica(root: Path, subjects: Sequence[str] | None = None, n_frames: int = 3) -> None:
    """A complete tiny DISFA copy: every published subject (default) with 8 AU label files of ``n_frames``
    lines (intensities 0-5) and a left-camera video of ``n_frames`` frames."""
    from au_ttt.data.protocol import DISFA_AUS, DISFA_PARTS

    subjects = [s for p in DISFA_PARTS.values() for s in p] if subjects is None else subjects
    for subject in subjects:
        write_disfa_labels(root, subject, {au: [(t + au) % 6 for t in range(n_frames)] for au in DISFA_AUS})
        write_disfa_video(root, subject, n_frames)


# ------------------------------------------------------------------ data-stage helpers (shards, faults)
def tiny_synthau(out: Path, bp4d_frames: int = 3, disfa_frames: int = 3, tasks: int = 1) -> Path:
    """The smallest SynthAU (1 subject per part, i.e. 3 per dataset) with real rendered faces and the
    landmark files both datasets ship; returns ``out``."""
    from au_ttt.data.synth import generate_synthau

    generate_synthau(out, seed=0, subjects_per_part=1, bp4d_tasks=tasks, bp4d_frames=bp4d_frames,
                     disfa_frames=disfa_frames, progress=False)
    return out


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path → bytes): compares whole output folders exactly."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def damage_image(path: Path, how: str) -> None:
    """Make an image file 'empty' (0 bytes), 'truncated' (first half kept) or 'text' (not an image)."""
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "text":
        path.write_bytes(b"this is not an image\n")
    else:
        raise ValueError(how)


def disfa_crop_store(root: Path, labels: np.ndarray, parts: Sequence[int], *, valid: Sequence[bool] | None = None,
                     ext: str = "png", blur: float = 0.0, seed: int = 0, shift: tuple[float, float] = (10.0, 5.0),
                     step: float = 1.0, sequence: str = "") -> tuple:
    """DISFA-like 300×280 noise frames of SN001 with template landmarks (frame i shifted ``step``·i px) → the
    crop store and AU-centre cache the loader reads; frames whose ``valid`` is false have no landmarks.
    Returns (index, crops folder, cache folder)."""
    import cv2
    import pandas as pd

    from au_ttt.data.align import load_aligned, template_points, write_crops
    from au_ttt.data.heatmaps import HeatmapConfig, write_centre_cache
    from au_ttt.data.landmarks import LandmarkSet, index_hash
    from au_ttt.data.protocol import DISFA_AUS

    n = len(labels)
    rng = np.random.default_rng(seed)
    images = [f"SN001/{i}.{ext}" for i in range(n)]
    for rel in images:
        (root / "raw" / rel).parent.mkdir(parents=True, exist_ok=True)
        noise = rng.integers(0, 255, (280, 300, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "raw" / rel), cv2.GaussianBlur(noise, (0, 0), blur) if blur else noise)
    index = pd.DataFrame({"dataset": "disfa", "subject": "SN001", "sequence": sequence, "frame": range(n),
                          "image": images, "part": list(parts)})
    index[[f"AU{a}" for a in DISFA_AUS]] = np.asarray(labels, np.int8)
    pts = np.stack([template_points() + np.array([shift[0] + step * i, shift[1]]) for i in range(n)])
    ok = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    lms = LandmarkSet(pts.astype(np.float32), ok.astype(np.float32), ok, index_hash(index), "test")
    write_crops(index, root / "raw", lms, root / "crops", progress=False)
    aligned = load_aligned(root / "crops", index)
    write_centre_cache(root / "cache", aligned.points, aligned.valid, HeatmapConfig(), index_hash(index))
    return index, root / "crops", root / "cache"
