"""``generate_synthau``: the whole SynthAU tree (a BP4D-format and a DISFA-format dataset) from one seed.

Layout under ``out_dir``::

    BP4D/AUCoding/AU_OCC/F001_T1.csv     BP4D/F001/T1/2440.jpg …    BP4D/2DFeatures/F001_T1.mat
    DISFA/Videos_LeftCamera/LeftVideoSN002_comp.avi    DISFA/ActionUnit_Labels/SN002/SN002_au1.txt …
    DISFA/Landmark_Points/SN002/tmp_frame_lm/SN002_0000_lm.mat …
    synthau.json                          parameters, counts and measured occurrence rates

Every subject's data depends only on (seed, dataset, subject), so growing ``subjects_per_part`` keeps the
existing subjects unchanged. Subjects are the first ``subjects_per_part`` of each published part.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from au_ttt.data.landmark_files import write_bp4d_landmarks, write_disfa_landmarks
from au_ttt.data.protocol import BP4D_AUS, DISFA_OCCURRENCE_THRESHOLD, first_subjects
from au_ttt.data.synth.face import ALL_AUS, Pose, apply_aus, neutral_landmarks, sample_identity
from au_ttt.data.synth.render import DOMAINS, DomainStyle, background, camera, draw_face
from au_ttt.data.synth.sequences import ON_THRESHOLD, au_trajectories, pose_track
from au_ttt.data.synth.writers import (
    DISFA_LABEL_AUS,
    bp4d_frame_path,
    open_disfa_video,
    write_bp4d_csv,
    write_disfa_labels,
    write_jpeg,
)
from au_ttt.data.synth_limits import synthau_size_problem
from au_ttt.errors import InputError
from au_ttt.fileio import make_temp_dir, swap_in_dir

__all__ = ["BP4D_COLUMNS", "generate_synthau"]

# BP4D CSV columns: the 12 evaluated AUs plus the other AUs we animate, as real files carry more AU columns
# than the evaluated ones (readers select by name). Extra columns are partly 9 (= unknown), see below.
BP4D_COLUMNS: tuple[int, ...] = tuple(sorted(ALL_AUS))
_BP4D_EXTRA = tuple(au for au in BP4D_COLUMNS if au not in BP4D_AUS)
_MANIFEST = "synthau.json"


def _rng(seed: int, dataset: str, name: str) -> np.random.Generator:
    """Generator keyed by (seed, dataset, subject/sequence name): stable when other subjects are added."""
    return np.random.default_rng([seed, zlib.crc32(dataset.encode()), zlib.crc32(name.encode())])


def _render_sequence(rng: np.random.Generator, idt, style: DomainStyle, inten: np.ndarray):
    """Yield (uint8 image, (68, 2) landmarks) for each frame of one sequence."""
    n = len(inten)
    track = pose_track(rng, n, style.rot_deg, style.shift_frac * style.width, 0.05)
    bg = background(rng, idt, style)
    neutral = neutral_landmarks(idt)
    light_dir = float(rng.choice([-1.0, 1.0]))
    size = rng.uniform(0.92, 1.08)
    for t in range(n):
        level = dict(zip(ALL_AUS, inten[t].tolist(), strict=True))
        canon = apply_aus(neutral, level)
        pose = Pose(scale=style.face_frac * style.width / 2 * size * track.scale[t], roll=track.roll[t],
                    yaw=track.yaw[t] + np.deg2rad(style.yaw_deg),
                    pitch=track.pitch[t] + np.deg2rad(style.pitch_deg), cx=style.width / 2 + track.dx[t],
                    cy=style.face_y * style.height + track.dy[t])
        img, pts = draw_face(bg, idt, canon, {au: v / 5.0 for au, v in level.items()}, pose, rng)
        yield camera(img, style, light_dir, rng), pts


def _bp4d_subject(root: Path, seed: int, subject: str, tasks: list[str], n_frames: int,
                  unknown_standard: int) -> dict:
    rng = _rng(seed, "bp4d", subject)
    idt = sample_identity(rng, "bp4d")
    style = DOMAINS["bp4d"]
    stats = {"frames": 0, "unknown_extra": 0, "unknown_standard": 0, "occurrence": np.zeros(len(BP4D_AUS))}
    for task in tasks:
        start = int(rng.integers(100, 3000))             # annotated segments start mid-video (e.g. 2440)
        frames = list(range(start, start + n_frames))
        inten = au_trajectories(rng, n_frames, "bp4d")
        points = np.empty((n_frames, 68, 2))
        for t, (img, pts) in enumerate(_render_sequence(rng, idt, style, inten)):
            write_jpeg(bp4d_frame_path(root, subject, task, frames[t]), img, style.jpeg_quality)
            points[t] = pts
        occ = (inten >= ON_THRESHOLD["bp4d"]).astype(np.int64)
        codes = occ[:, [ALL_AUS.index(au) for au in BP4D_COLUMNS]]
        s = int(rng.integers(n_frames))                  # a run of "unknown" in the extra columns
        extra = [BP4D_COLUMNS.index(au) for au in _BP4D_EXTRA]
        codes[s:s + max(1, n_frames // 10), extra] = 9
        stats["unknown_extra"] += int((codes[:, extra] == 9).sum())
        for _ in range(unknown_standard):                # optional 9s in evaluated columns (off by default)
            codes[int(rng.integers(n_frames)), BP4D_COLUMNS.index(int(rng.choice(BP4D_AUS)))] = 9
        std = [BP4D_COLUMNS.index(au) for au in BP4D_AUS]
        stats["unknown_standard"] += int((codes[:, std] == 9).sum())
        stats["occurrence"] += occ[:, [ALL_AUS.index(au) for au in BP4D_AUS]].sum(0)
        write_bp4d_csv(root, subject, task, frames, BP4D_COLUMNS, codes)
        write_bp4d_landmarks(root, subject, task, frames, points)
        stats["frames"] += n_frames
    return stats


def _disfa_subject(root: Path, seed: int, subject: str, n_frames: int) -> dict:
    rng = _rng(seed, "disfa", subject)
    idt = sample_identity(rng, "disfa")
    style = DOMAINS["disfa"]
    inten = au_trajectories(rng, n_frames, "disfa")
    points = np.empty((n_frames, 68, 2))
    writer = open_disfa_video(root, subject, style.width, style.height)
    try:
        for t, (img, pts) in enumerate(_render_sequence(rng, idt, style, inten)):
            writer.write(img)
            points[t] = pts
    finally:
        writer.release()
    levels = np.clip(np.round(inten[:, [ALL_AUS.index(au) for au in DISFA_LABEL_AUS]]), 0, 5).astype(np.int64)
    write_disfa_labels(root, subject, levels)
    write_disfa_landmarks(root, subject, list(range(n_frames)), points)
    return {"frames": n_frames, "occurrence": (levels >= DISFA_OCCURRENCE_THRESHOLD).sum(0)}


def _fix_mat_headers(root: Path) -> None:
    """Replace the creation time scipy.io.savemat stamps into each MAT header, so same seed → same bytes.

    A MAT-5 file starts with 116 bytes of free descriptive text (then subsystem offset, version, endian);
    only that text changes.
    """
    text = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: au_ttt SynthAU"
    header = text + b" " * (116 - len(text))
    for path in sorted(root.rglob("*.mat")):
        data = path.read_bytes()
        if not data.startswith(b"MATLAB 5.0 MAT-file"):
            raise RuntimeError(f"{path} is not a MAT-5 file; cannot make its header deterministic")
        path.write_bytes(header + data[116:])


def _check_sizes(**sizes: int) -> None:
    """The sizes' ranges (au_ttt.data.synth_limits, shared with the config checks), named as `au-ttt synth`'s flags."""
    for name, value in sizes.items():
        problem = synthau_size_problem(name, value)
        if problem:
            raise InputError(f"--{name.replace('_', '-')} {value!r}: {problem}")


def generate_synthau(out_dir: str | os.PathLike, seed: int = 0, subjects_per_part: int = 2, bp4d_tasks: int = 3,
                     bp4d_frames: int = 25, disfa_frames: int = 100, unknown_standard: int = 0,
                     overwrite: bool = False, progress: bool = True) -> dict:
    """Write SynthAU to ``out_dir`` atomically and return its manifest (paths, counts, occurrence rates).

    Args:
        out_dir: target directory; must not exist unless ``overwrite``.
        seed: same seed → byte-identical images, videos and label files.
        subjects_per_part: subjects taken from each of the three published parts of each dataset.
        bp4d_tasks: tasks T1..Tk per BP4D subject; bp4d_frames: frames per task.
        disfa_frames: frames per DISFA video.
        unknown_standard: (frame, AU) cells per BP4D task set to 9 in the 12 evaluated columns.
    """
    out = Path(out_dir)
    _check_sizes(seed=seed, subjects_per_part=subjects_per_part, bp4d_tasks=bp4d_tasks, bp4d_frames=bp4d_frames,
                 disfa_frames=disfa_frames, unknown_standard=unknown_standard)
    if out.exists() and not overwrite:
        raise InputError(f"{out} already exists: choose a new --out or pass --overwrite")
    bp4d_subjects, disfa_subjects = (first_subjects(d, subjects_per_part) for d in ("bp4d", "disfa"))
    tmp = make_temp_dir(out)                             # also sweeps temporaries of killed runs
    try:
        tasks = [f"T{k}" for k in range(1, bp4d_tasks + 1)]
        bar = tqdm(total=len(bp4d_subjects) + len(disfa_subjects), desc="SynthAU", unit="subject",
                   disable=not progress)
        b_stats = []
        for subject in bp4d_subjects:
            bar.set_postfix_str(f"BP4D {subject}")
            b_stats.append(_bp4d_subject(tmp / "BP4D", seed, subject, tasks, bp4d_frames, unknown_standard))
            bar.update()
        d_stats = []
        for subject in disfa_subjects:
            bar.set_postfix_str(f"DISFA {subject}")
            d_stats.append(_disfa_subject(tmp / "DISFA", seed, subject, disfa_frames))
            bar.update()
        bar.close()
        n_b, n_d = sum(s["frames"] for s in b_stats), sum(s["frames"] for s in d_stats)
        b_occ = sum(s["occurrence"] for s in b_stats) / n_b
        d_occ = sum(s["occurrence"] for s in d_stats) / n_d
        manifest = {
            "seed": seed, "subjects_per_part": subjects_per_part, "bp4d_tasks": tasks, "bp4d_frames_per_task":
            bp4d_frames, "disfa_frames_per_video": disfa_frames,
            "bp4d": {"root": "BP4D", "subjects": bp4d_subjects, "frames": n_b,
                     "size_wh": [DOMAINS["bp4d"].width, DOMAINS["bp4d"].height],
                     "unknown_9_extra_columns": sum(s["unknown_extra"] for s in b_stats),
                     "unknown_9_evaluated_columns": sum(s["unknown_standard"] for s in b_stats),
                     "occurrence_rate": {f"AU{au}": round(float(r), 4) for au, r in zip(BP4D_AUS, b_occ, strict=True)}},
            "disfa": {"root": "DISFA", "subjects": disfa_subjects, "frames": n_d,
                      "size_wh": [DOMAINS["disfa"].width, DOMAINS["disfa"].height],
                      "occurrence_rate": {f"AU{au}": round(float(r), 4)
                                          for au, r in zip(DISFA_LABEL_AUS, d_occ, strict=True)}},
        }
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _fix_mat_headers(tmp)
        swap_in_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["out_dir"] = str(out)
    manifest["bp4d"]["root"], manifest["disfa"]["root"] = str(out / "BP4D"), str(out / "DISFA")
    return manifest
