"""Spot-check pictures (``predict --overlay``): boxes, face ids, landmarks and an AU bar chart per face.

Drawn with OpenCV so a video overlay costs a few milliseconds per frame. Bars are the AU probabilities on
a 0–1 scale; a bar at or above its threshold is filled in the face's colour, below it in grey, and the
threshold is a tick on each bar. Images become PNGs, videos MP4s (``mp4v``) at the scored frame rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from au_ttt.predict.output import FaceRow

__all__ = ["OverlayVideo", "draw_frame", "write_png"]

_COLOURS = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
            (204, 121, 167)]   # Okabe–Ito palette (colour-blind safe), RGB
_GREY = (150, 150, 150)


def _colour(face_id: int) -> tuple[int, int, int]:
    return _COLOURS[face_id % len(_COLOURS)] if face_id >= 0 else _GREY


def _bars(img: np.ndarray, row: FaceRow, aus: Sequence[int], thresholds: np.ndarray, scale: float) -> None:
    import cv2

    assert row.box is not None and row.probs is not None
    h, w = img.shape[:2]
    font, fs, th = cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, max(1, round(scale))
    line = max(8, round(11 * scale))
    label_w, bar_w = round(34 * scale), round(60 * scale)
    panel_w, panel_h = label_w + bar_w + 6, line * len(aus) + 4
    x1, y1, x2, _ = (round(float(v)) for v in row.box)
    px = x2 + 4 if x2 + 4 + panel_w <= w else max(0, x1 - 4 - panel_w)
    py = int(np.clip(y1, 0, max(0, h - panel_h)))
    sub = img[py:py + panel_h, px:px + panel_w]
    sub[:] = (sub.astype(np.float32) * 0.35).astype(np.uint8)    # darken behind the chart
    colour = _colour(row.face_id)
    for k, (au, p, t) in enumerate(zip(aus, row.probs, thresholds, strict=True)):
        y = py + 2 + k * line
        cv2.putText(img, f"AU{au}", (px + 2, y + line - 3), font, fs, (255, 255, 255), th, cv2.LINE_AA)
        bx = px + label_w
        cv2.rectangle(img, (bx, y + 2), (bx + bar_w, y + line - 2), (90, 90, 90), 1)
        fill = round(float(p) * bar_w)
        if fill > 0:
            cv2.rectangle(img, (bx, y + 2), (bx + fill, y + line - 2), colour if p >= t else _GREY, -1)
        tx = bx + round(float(t) * bar_w)
        cv2.line(img, (tx, y + 1), (tx, y + line - 1), (255, 255, 255), 1)


def draw_frame(image: np.ndarray, rows: Sequence[FaceRow], aus: Sequence[int], thresholds: np.ndarray) -> np.ndarray:
    """A copy of the RGB ``image`` with every face of ``rows`` drawn on it."""
    import cv2

    img = np.ascontiguousarray(image.copy())
    h, w = img.shape[:2]
    scale = max(1.0, min(h, w) / 400)
    for row in rows:
        if row.box is None:
            continue
        colour = _colour(row.face_id)
        x1, y1, x2, y2 = (round(float(v)) for v in row.box)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, max(1, round(2 * scale)))
        if row.points is not None:
            for x, y in np.asarray(row.points, np.float64):
                if np.isfinite(x) and np.isfinite(y):
                    cv2.circle(img, (round(float(x)), round(float(y))), max(1, round(scale)), colour, -1)
        label = f"id {row.face_id}" if row.success else f"id {row.face_id} (no fit)"
        cv2.putText(img, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, colour,
                    max(1, round(scale)), cv2.LINE_AA)
        if row.success and row.probs is not None:
            _bars(img, row, aus, thresholds, scale)
    if not any(r.box is not None for r in rows):
        cv2.putText(img, "no face", (8, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 60, 60),
                    max(1, round(scale)), cv2.LINE_AA)
    return img


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB image as PNG atomically."""
    from PIL import Image

    from au_ttt.fileio import atomic_write

    atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


class OverlayVideo:
    """MP4 writer opened on the first frame; written beside the target and renamed when closed."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps if fps > 0 else 10.0
        self.tmp: Path | None = None      # .NAME.<pid>.<random>.tmp.mp4: swept by the next run if we are killed
        self.writer = None

    def write(self, image: np.ndarray) -> None:
        import cv2

        from au_ttt.fileio import temp_file

        if self.writer is None:
            self.tmp = temp_file(self.path, keep_suffix=True)
            h, w = image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
        self.writer.write(np.ascontiguousarray(image[:, :, ::-1]))

    def close(self, keep: bool = True) -> None:
        import os

        if self.writer is None or self.tmp is None:
            return
        self.writer.release()
        self.writer = None
        if keep:
            from au_ttt.fileio import umask_mode

            os.chmod(self.tmp, umask_mode())      # mkstemp made it private
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
