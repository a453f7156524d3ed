"""What ``au-ttt predict`` reads: INPUT arguments → image and video sources → frames.

INPUT arguments are expanded by :mod:`au_ttt.predict.expand` (folders, globs, list files; re-exported here).
Still images are decoded only by :func:`au_ttt.data.images.read_image` (greyscale, RGBA, 16-bit and
EXIF-rotated files come back upright as RGB uint8), and one whose header announces more than ``max_pixels``
pixels is refused before its pixels are decoded. Videos are decoded by OpenCV's FFmpeg backend with
``CAP_PROP_ORIENTATION_AUTO`` on, so phone videos with a rotation tag come out upright.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from au_ttt.data.images import open_video, read_image
from au_ttt.errors import InputError
from au_ttt.predict.expand import (
    IMAGE_SUFFIXES,
    LIST_SUFFIXES,
    MAX_INPUTS,
    MAX_PIXELS,
    VIDEO_SUFFIXES,
    InputBudget,
    Source,
    Unreadable,
    expand_inputs,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "LIST_SUFFIXES",
    "MAX_INPUTS",
    "MAX_PIXELS",
    "VIDEO_SUFFIXES",
    "Frame",
    "FrameStream",
    "InputBudget",
    "Source",
    "Unreadable",
    "VideoReader",
    "expand_inputs",
]


@dataclass(frozen=True)
class Frame:
    """A decoded frame: 0-based index in its file, time in seconds, RGB uint8 (H, W, 3)."""

    index: int
    timestamp: float
    image: np.ndarray


class VideoReader:
    """OpenCV video decoding with rotation tags applied; raises :class:`InputError` if it cannot open."""

    def __init__(self, path: str | Path) -> None:
        import cv2

        self.path = Path(path)
        self.capture = open_video(self.path, "it is not a video, is damaged, or uses a codec OpenCV's FFmpeg "
                                             "backend lacks; convert it, e.g. to H.264 MP4")
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

    def __init__(self, source: Source, every: int = 1, max_pixels: int | None = MAX_PIXELS) -> None:
        self.source, self.every = source, every
        self.video = VideoReader(source.path) if source.kind == "video" else None
        self.fps = self.video.fps if self.video else 0.0
        self.rotation = self.video.rotation if self.video else 0
        self.announced_frames = self.video.frame_count if self.video else 1
        if self.video is None:
            self._frames: Iterator[Frame] = iter([Frame(0, 0.0, read_image(source.path, max_pixels=max_pixels))])
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
