"""Complete-count replicas: SynthAU faces in the BP4D and DISFA layouts at the published frame counts.

The scale rehearsal (``scripts/full_rehearsal.py``) needs a copy that ``au-ttt data check`` accepts in its
default mode: all 41 BP4D subjects × T1–T8 with exactly the published AU-coded segments (first frame and
length of each, :func:`au_ttt.data.protocol.bp4d_segments`: 50,631 / 50,182 / 46,034 frames per part) and
all 27 DISFA left-camera videos of 4,845 frames (SN010: 4,844) with their label files — 277,661 frames.

Rendering 277 k SynthAU frames would cost about 2.3 CPU-hours (30 ms each), so every sequence renders a
*pool* of distinct frames with the SynthAU renderer and walks through it back and forth (each pool frame
held ``HOLD`` frames). Every frame is still its own JPEG file (BP4D) or video frame (DISFA), and its labels
and shipped landmarks are those of the pool frame it shows, so labels, landmarks and pixels agree. What
differs from the real data is stated in docs/scaling.md: frame size (SynthAU's 240×320 / 256×192 instead of
1040×1392 / 1024×768), repeated pool frames, synthetic faces.

Layout (as :mod:`au_ttt.data.synth.generate` and the distributed datasets): ``BP4D/AUCoding/AU_OCC/*.csv``
with the :data:`~au_ttt.data.protocol.BP4D_CSV_AUS` columns (0/1, and 9 runs in non-evaluated columns),
``BP4D/{subject}/{task}/{frame}.jpg`` (``pad`` > 0: zero-padded names), ``BP4D/2DFeatures/*.mat``;
``DISFA/Videos_LeftCamera/*.avi`` (XVID), ``DISFA/ActionUnit_Labels``, ``DISFA/Landmark_Points``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from au_ttt.data.landmark_files import write_bp4d_landmarks, write_disfa_landmarks
from au_ttt.data.protocol import BP4D_AUS, BP4D_CSV_AUS, DISFA_PARTS, PARTS, bp4d_segments, disfa_label_lines
from au_ttt.data.synth.face import ALL_AUS, sample_identity
from au_ttt.data.synth.generate import _fix_mat_headers, _render_sequence, _rng
from au_ttt.data.synth.render import DOMAINS
from au_ttt.data.synth.sequences import ON_THRESHOLD, au_trajectories
from au_ttt.data.synth.writers import (
    DISFA_LABEL_AUS,
    open_disfa_video,
    write_bp4d_csv,
    write_disfa_labels,
)
from au_ttt.errors import InputError
from au_ttt.fileio import make_temp_dir, swap_in_dir

__all__ = ["HOLD", "MANIFEST", "pool_walk", "write_replica"]

HOLD = 4                   # frames each pool frame is shown (about 0.16 s at BP4D's 25 fps)
MANIFEST = "replica.json"
_EXTRA = tuple(au for au in BP4D_CSV_AUS if au not in BP4D_AUS)


def pool_walk(n: int, pool: int, hold: int = HOLD) -> np.ndarray:
    """Pool index of each of ``n`` frames: 0, 1, …, pool−1, pool−2, …, 1, 0, 1, … each held ``hold`` frames."""
    k = np.arange(n) // hold
    if pool <= 1:
        return np.zeros(n, np.int64)
    period = 2 * (pool - 1)
    m = k % period
    return np.where(m < pool, m, period - m).astype(np.int64)


def _pool(rng: np.random.Generator, dataset: str, idt, size: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """``size`` rendered frames of one sequence: (BGR images, landmarks (size, 68, 2), intensities (size, 17))."""
    inten = au_trajectories(rng, size, dataset)
    images, points = [], np.empty((size, 68, 2))
    for t, (img, pts) in enumerate(_render_sequence(rng, idt, DOMAINS[dataset], inten)):
        images.append(img)
        points[t] = pts
    return images, points, inten


def _bp4d_subject(root: Path, seed: int, subject: str, frames_cap: int | None, pool: int, pad: int) -> int:
    """Every task of one subject: CSV, frame JPEGs (pool bytes, one file per frame) and 2DFeatures MAT."""
    idt = sample_identity(_rng(seed, "bp4d", subject), "bp4d")
    quality = DOMAINS["bp4d"].jpeg_quality
    total = 0
    for task, (first, n) in bp4d_segments()[subject].items():
        n = min(n, frames_cap) if frames_cap is not None else n
        rng = _rng(seed, "bp4d", f"{subject}/{task}")
        images, points, inten = _pool(rng, "bp4d", idt, min(pool, n))
        blobs = [cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for img in images]
        walk = pool_walk(n, len(images))
        frames = list(range(first, first + n))
        folder = root / subject / task
        folder.mkdir(parents=True)
        for frame, k in zip(frames, walk.tolist(), strict=True):
            (folder / f"{frame:0{pad}d}.jpg").write_bytes(blobs[k])
        occ = (inten[walk] >= ON_THRESHOLD["bp4d"]).astype(np.int64)
        codes = np.zeros((n, len(BP4D_CSV_AUS)), np.int64)
        for j, au in enumerate(BP4D_CSV_AUS):
            if au in ALL_AUS:
                codes[:, j] = occ[:, ALL_AUS.index(au)]
        start = int(rng.integers(n))                       # a run of 9 (unknown) in non-evaluated columns
        codes[start:start + max(1, n // 10), [BP4D_CSV_AUS.index(au) for au in _EXTRA]] = 9
        write_bp4d_csv(root, subject, task, frames, BP4D_CSV_AUS, codes)
        write_bp4d_landmarks(root, subject, task, frames, points[walk])
        total += n
    return total


def _disfa_subject(root: Path, seed: int, subject: str, frames_cap: int | None, pool: int) -> int:
    """One left-camera video (pool frames along the walk), its 12 label files and its landmark MAT files."""
    n = min(disfa_label_lines(subject), frames_cap) if frames_cap is not None else disfa_label_lines(subject)
    rng = _rng(seed, "disfa", subject)
    idt = sample_identity(rng, "disfa")
    style = DOMAINS["disfa"]
    images, points, inten = _pool(rng, "disfa", idt, min(pool, n))
    walk = pool_walk(n, len(images))
    writer = open_disfa_video(root, subject, style.width, style.height)
    try:
        for k in walk.tolist():
            writer.write(images[k])
    finally:
        writer.release()
    levels = np.clip(np.round(inten[walk][:, [ALL_AUS.index(au) for au in DISFA_LABEL_AUS]]), 0, 5)
    write_disfa_labels(root, subject, levels.astype(np.int64))
    write_disfa_landmarks(root, subject, list(range(n)), points[walk])
    return n


def _job(args: tuple) -> tuple[str, str, int]:
    dataset, root, seed, subject, cap, pool, pad = args
    if dataset == "bp4d":
        return dataset, subject, _bp4d_subject(Path(root), seed, subject, cap, pool, pad)
    return dataset, subject, _disfa_subject(Path(root), seed, subject, cap, pool)


def write_replica(out_dir: str | os.PathLike, *, seed: int = 0, bp4d_frames: int | None = None,
                  disfa_frames: int | None = None, bp4d_pool: int = 12, disfa_pool: int = 64, pad: int = 0,
                  workers: int = 1) -> dict:
    """Write ``out_dir/{BP4D,DISFA}`` and ``out_dir/replica.json`` atomically; returns the manifest.

    ``bp4d_frames`` / ``disfa_frames``: keep only the first k frames of each segment / video (None: the
    published counts). ``pad``: zero-pad BP4D frame names to this many digits (0: ``2440.jpg``).
    ``workers`` processes write subjects in parallel (each writes only its own files).
    """
    out = Path(out_dir)
    if out.exists():
        raise InputError(f"{out} already exists: remove it or choose another folder")
    for name, value in (("bp4d_pool", bp4d_pool), ("disfa_pool", disfa_pool), ("workers", workers)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    tmp = make_temp_dir(out)
    jobs = [("bp4d", str(tmp / "BP4D"), seed, s, bp4d_frames, bp4d_pool, pad) for p in (1, 2, 3)
            for s in PARTS["bp4d"][p]]
    jobs += [("disfa", str(tmp / "DISFA"), seed, s, disfa_frames, disfa_pool, 0) for p in (1, 2, 3)
             for s in DISFA_PARTS[p]]
    try:
        if workers > 1:
            from au_ttt.data.workers import worker_pool

            with worker_pool(workers) as pool:
                done = list(pool.map(_job, jobs))
        else:
            done = [_job(j) for j in jobs]
        frames = {d: {s: n for dd, s, n in done if dd == d} for d in ("bp4d", "disfa")}
        manifest = {"seed": seed, "bp4d_frames_cap": bp4d_frames, "disfa_frames_cap": disfa_frames,
                    "bp4d_pool": bp4d_pool, "disfa_pool": disfa_pool, "hold": HOLD, "pad": pad,
                    "frame_size_wh": {d: [DOMAINS[d].width, DOMAINS[d].height] for d in ("bp4d", "disfa")},
                    "frames": {d: sum(v.values()) for d, v in frames.items()}, "per_subject": frames}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _fix_mat_headers(tmp)
        swap_in_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
