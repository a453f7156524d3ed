"""DISFA left-camera videos → one JPEG per frame, ``{out}/SN###/{t}.jpg`` with t 0-based.

Frame t is line t of the subject's label files (ME-GraphAU's convention: ``0.png`` is the first frame of
``LeftVideoSN001_comp.avi``; maintainer, CVI-SZU/ME-GraphAU issue #2). Decoding uses
``cv2.VideoCapture`` (FFMPEG backend). Each subject is decoded into a hidden temp folder beside its
target (:func:`au_ttt.fileio.building_dir`), which gets a ``frames.json`` marker (frame count, size, source
video) and is then renamed into place, so a subject folder exists only complete; a subject whose folder
exists is skipped unless forced. Temporaries of killed runs are swept on the next run of that subject.
A video that cannot be opened or yields no frame is an error naming it; one with fewer frames than label
lines is decoded, and ``data index`` excludes and counts the label lines beyond it (``beyond_video``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tqdm import tqdm

from au_ttt.data.images import opened_video
from au_ttt.errors import InputError
from au_ttt.fileio import building_dir, sweep_stale

__all__ = ["FRAMES_MARKER", "VIDEO_DIR", "decode_video", "extract_disfa_frames", "read_marker", "video_path"]

VIDEO_DIR = "Videos_LeftCamera"
FRAMES_MARKER = "frames.json"
JPEG_QUALITY = 95  # OpenCV's default; stated so re-extraction is reproducible
_VIDEO_NAME = re.compile(r"^LeftVideo(?P<subject>SN\d{3})_comp\.avi$")


def video_path(root: str | Path, subject: str) -> Path:
    return Path(root) / VIDEO_DIR / f"LeftVideo{subject}_comp.avi"


def read_marker(subject_dir: Path) -> dict | None:
    """The ``frames.json`` of a decoded subject, or None if the folder was not made by us."""
    path = subject_dir / FRAMES_MARKER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is corrupt ({err}); re-run `au-ttt data frames --force`") from err


def decode_video(video: Path, out_dir: Path, progress: bool = True) -> int:
    """Decode every frame of ``video`` into ``out_dir/{t}.jpg`` atomically; returns the frame count."""
    with opened_video(video, "check the file (re-copy it from the dataset) and that OpenCV has the FFMPEG "
                         "backend") as capture, building_dir(out_dir) as tmp:
        return _decode_into(capture, video, tmp, progress)


def _decode_into(capture, video: Path, tmp: Path, progress: bool) -> int:
    """Write each frame of an open ``capture`` as ``tmp/{t}.jpg``, then the ``frames.json`` marker."""
    import cv2

    expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    bar = tqdm(total=expected, desc=video.name, unit="frame", disable=not progress, leave=False)
    count, size = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if not cv2.imwrite(str(tmp / f"{count}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"could not write {tmp / f'{count}.jpg'} (disk full or unwritable --out?)")
        size = (frame.shape[1], frame.shape[0])
        count += 1
        bar.update()
    bar.close()
    if count == 0:
        raise InputError(f"video {video} yielded no frames; it is corrupt or empty: re-copy it from DISFA")
    marker = {"video": str(video.resolve()), "frames": count, "width": size[0], "height": size[1],
              "container_frame_count": expected, "jpeg_quality": JPEG_QUALITY}
    (tmp / FRAMES_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return count


def _no_video(target: Path) -> None:
    """A subject folder with only a marker saying there is no video (0 frames): `data index` then excludes
    and counts all of that subject's label lines (``beyond_video``)."""
    with building_dir(target) as tmp:
        (tmp / FRAMES_MARKER).write_text(json.dumps({"video": None, "frames": 0, "status": "no video"}) + "\n")


def extract_disfa_frames(root: str | Path, out: str | Path, force: bool = False,
                         subjects: list[str] | None = None, progress: bool = True,
                         missing_ok: bool = False) -> dict[str, dict]:
    """Decode each ``Videos_LeftCamera/LeftVideoSN###_comp.avi``; returns subject → {frames, status}.

    ``missing_ok``: a subject of ``subjects`` without a video gets a 0-frame marker folder instead of an
    error (a DAG that fixes its per-subject jobs from the published subject list then still runs on a
    copy that lacks a subject).
    """
    root, out = Path(root), Path(out)
    video_dir = root / VIDEO_DIR
    if not video_dir.is_dir():
        raise InputError(f"{video_dir} not found; --root must be the DISFA folder that contains {VIDEO_DIR}/")
    videos: dict[str, Path | None] = {
        m["subject"]: p for p in sorted(video_dir.iterdir()) if (m := _VIDEO_NAME.match(p.name))}
    if subjects is not None:
        missing = sorted(set(subjects) - set(videos))
        if missing and not missing_ok:
            raise InputError(f"no left-camera video for {', '.join(missing)} in {video_dir} (pass --missing-ok "
                             "to record them as 0-frame subjects)")
        videos = {s: videos.get(s) for s in subjects}
    if not videos:
        raise InputError(f"{video_dir} holds no LeftVideoSN###_comp.avi; check --root")
    result: dict[str, dict] = {}
    for subject, video in tqdm(videos.items(), desc="DISFA videos", unit="video", disable=not progress):
        target = out / subject
        sweep_stale(target)
        marker = read_marker(target) if target.is_dir() else None
        if not force and marker is not None and not (marker.get("video") is None and video is not None):
            result[subject] = {"frames": marker["frames"], "status": "skipped (already decoded)"}
            continue
        if not force and target.exists() and marker is None:
            raise InputError(f"{target} exists but has no {FRAMES_MARKER} (not made by `au-ttt data "
                             "frames`); remove it or pass --force to replace it")
        if video is None:
            _no_video(target)
            result[subject] = {"frames": 0, "status": f"no video in {video_dir}"}
        else:
            result[subject] = {"frames": decode_video(video, target, progress), "status": "decoded"}
    return result
