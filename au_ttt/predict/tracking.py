"""Stable ``face_id``s across the scored frames of a video: IoU matching of boxes (SORT-style, without the
Kalman filter: Bewley et al., ICIP 2016).

Each scored frame's boxes are matched to the live tracks by maximum total IoU (Hungarian assignment,
``scipy.optimize.linear_sum_assignment``); a pair counts only at IoU ≥ ``iou_threshold``. An unmatched box
opens a new id (new boxes are numbered left to right); a track that stays unmatched for more than
``max_missed`` scored frames is closed, so a face that leaves for longer comes back under a new id. There is
no appearance re-identification (as in OpenFace's FaceLandmarkVidMulti); ids are per file, starting at 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["IoUTracker", "iou_matrix", "left_to_right_ids"]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (len(a), len(b)) of boxes given as (x1, y1, x2, y2) rows."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: np.clip(r[:, 2] - r[:, 0], 0, None) * np.clip(r[:, 3] - r[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def left_to_right_ids(boxes: list[np.ndarray]) -> list[int]:
    """Ids of a still image's faces: 0, 1, … from left to right (ties: top to bottom)."""
    order = sorted(range(len(boxes)), key=lambda i: (float(boxes[i][0]), float(boxes[i][1])))
    ids = [0] * len(boxes)
    for rank, i in enumerate(order):
        ids[i] = rank
    return ids


@dataclass
class IoUTracker:
    iou_threshold: float = 0.3
    max_missed: int = 5
    _boxes: dict[int, np.ndarray] = field(default_factory=dict)
    _missed: dict[int, int] = field(default_factory=dict)
    _next: int = 0

    def update(self, boxes: list[np.ndarray]) -> list[int]:
        """Ids for this frame's boxes (same order as given)."""
        from scipy.optimize import linear_sum_assignment

        ids = [-1] * len(boxes)
        live = list(self._boxes)
        if boxes and live:
            iou = iou_matrix(np.stack(boxes), np.stack([self._boxes[t] for t in live]))
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= self.iou_threshold:
                    ids[r] = live[c]
        for i in sorted((i for i in range(len(boxes)) if ids[i] < 0), key=lambda i: float(boxes[i][0])):
            ids[i], self._next = self._next, self._next + 1
        matched = set(ids)
        for t in live:
            if t not in matched:
                self._missed[t] += 1
                if self._missed[t] > self.max_missed:
                    del self._boxes[t], self._missed[t]
        for i, t in enumerate(ids):
            self._boxes[t], self._missed[t] = np.asarray(boxes[i], np.float64), 0
        return ids
