"""What ``au-ttt predict`` reads: INPUT arguments → image and video sources → frames.

An INPUT is an image, a video, a folder (searched recursively), a glob (``**`` allowed) or a text list
(``.txt``/``.lst``/``.list``, one INPUT per line, ``#`` comments, relative to the list's folder). What cannot
be found is returned as a named :class:`Unreadable` entry, never an exception, so one bad path does not stop
a run. Still images are decoded only by :func:`au_ttt.data.images.read_image` (greyscale, RGBA, 16-bit and
EXIF-rotated files come back upright as RGB uint8). Videos are decoded by OpenCV's FFmpeg backend with
``CAP_PROP_ORIENTATION_AUTO`` on, so phone videos with a rotation tag come out upright.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from au_ttt.data.images import read_image
from au_ttt.errors import InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "LIST_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Frame",
    "FrameStream",
    "Source",
    "Unreadable",
    "VideoReader",
    "expand_inputs",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm",
                            ".pbm", ".gif", ".jp2"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                            ".flv", ".3gp", ".mts", ".m2ts", ".ts", ".ogv"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
_GLOB_CHARS = frozenset("*?[")
_MAX_LIST_DEPTH = 5


@dataclass(frozen=True)
class Source:
    """One input file: its absolute path, ``image`` or ``video``, and the name the user gave for it."""

    path: Path
    kind: Literal["image", "video"]
    name: str


@dataclass(frozen=True)
class Unreadable:
    """An input that produced no frames, with the reason shown in the summary."""

    name: str
    reason: str


@dataclass(frozen=True)
class Frame:
    """A decoded frame: 0-based index in its file, time in seconds, RGB uint8 (H, W, 3)."""

    index: int
    timestamp: float
    image: np.ndarray


def _kind(path: Path) -> Literal["image", "video"]:
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def _known(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


@dataclass
class _Expansion:
    sources: list[Source] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    seen: set[Path] = field(default_factory=set)

    def add(self, path: Path, name: str) -> None:
        path = path.resolve()
        if path not in self.seen:
            self.seen.add(path)
            self.sources.append(Source(path, _kind(path), name))


def _walk(folder: Path) -> list[Path]:
    """Image and video files under ``folder`` in sorted order (hidden files and folders skipped)."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(root) / f for f in sorted(files) if not f.startswith(".") and _known(Path(f)))
    return out


def _expand_one(item: str, base: Path, acc: _Expansion, depth: int) -> None:
    path = Path(item).expanduser()
    if not path.is_absolute():
        path = base / path
    if any(c in item for c in _GLOB_CHARS) and not path.exists():
        matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
        files = [m for m in matches if m.is_file() and _known(m)]
        for folder in (m for m in matches if m.is_dir()):
            files.extend(_walk(folder))
        if not files:
            acc.unreadable.append(Unreadable(item, "the pattern matched no image or video file"))
        for f in files:
            acc.add(f, str(f))
        return
    if path.is_dir():
        files = _walk(path)
        if not files:
            acc.unreadable.append(Unreadable(item, "folder holds no image or video file"))
        for f in files:
            acc.add(f, str(f))
        return
    if not path.exists():
        acc.unreadable.append(Unreadable(item, "not found"))
        return
    if path.suffix.lower() in LIST_SUFFIXES:
        if depth >= _MAX_LIST_DEPTH:
            acc.unreadable.append(Unreadable(item, f"list files nested more than {_MAX_LIST_DEPTH} deep"))
            return
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            acc.unreadable.append(Unreadable(item, f"cannot read the list file ({err})"))
            return
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                _expand_one(line, path.parent, acc, depth + 1)
        return
    acc.add(path, item)


def expand_inputs(items: list[str], base: str | Path | None = None) -> tuple[list[Source], list[Unreadable]]:
    """Sources in the order given (each file once) and the inputs that led to nothing."""
    acc = _Expansion()
    for item in items:
        _expand_one(str(item), Path(base) if base is not None else Path.cwd(), acc, 0)
    return acc.sources, acc.unreadable


class VideoReader:
    """OpenCV video decoding with rotation tags applied; raises :class:`InputError` if it cannot open."""

    def __init__(self, path: str | Path) -> None:
        import cv2

        self.path = Path(path)
        self.capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self.capture.isOpened():
            raise InputError(f"{self.path}: cannot open the video (not a video, damaged, or a codec OpenCV's "
                             "FFmpeg backend lacks); convert it, e.g. to H.264 MP4")
        self.capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.rotation = int(self.capture.get(cv2.CAP_PROP_ORIENTATION_META) or 0)
        self.decoded = 0
        self.total_frames = 0

    def frames(self, every: int = 1) -> Iterator[Frame]:
        """Frames 0, every, 2·every, …; frames in between are only grabbed (demuxed), not converted."""
        import cv2

        i = 0
        try:
            while True:
                if i % every:
                    if not self.capture.grab():
                        break
                else:
                    ok, bgr = self.capture.read()
                    if not ok:
                        break
                    self.decoded += 1
                    stamp = i / self.fps if self.fps > 0 else self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                    yield Frame(i, float(stamp), np.ascontiguousarray(bgr[:, :, ::-1]))
                i += 1
        finally:
            self.capture.release()
        self.total_frames = i


class FrameStream:
    """The scored frames of one source, plus what the summary and the overlay need (fps, rotation).

    Opening decodes the image, or the first frame of the video, so that an unreadable file fails here
    (an :class:`InputError` naming it) and never half-way through a run's output.
    """

    def __init__(self, source: Source, every: int = 1) -> None:
        self.source, self.every = source, every
        self.video = VideoReader(source.path) if source.kind == "video" else None
        self.fps = self.video.fps if self.video else 0.0
        self.rotation = self.video.rotation if self.video else 0
        self.announced_frames = self.video.frame_count if self.video else 1
        if self.video is None:
            self._frames: Iterator[Frame] = iter([Frame(0, 0.0, read_image(source.path))])
            return
        frames = self.video.frames(every)
        first = next(frames, None)
        if first is None:
            raise InputError(f"{source.path}: the video opened but no frame could be decoded; it is empty or "
                             "damaged")
        self._frames = _chain(first, frames)

    def __iter__(self) -> Iterator[Frame]:
        return self._frames

    @property
    def total_frames(self) -> int:
        """Frames in the file (decoded or grabbed), known once iteration ended."""
        return self.video.total_frames if self.video else 1


def _chain(first: Frame, rest: Iterator[Frame]) -> Iterator[Frame]:
    yield first
    yield from rest
