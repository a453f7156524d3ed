"""Every face in a frame: a box from an offline detector, then dlib's 68 landmarks fitted in it.

Detectors (both ship their weights inside a PyPI package; docs/predict.md has the measurement behind the
default):

* ``mtcnn`` (default): facenet-pytorch's MTCNN (Zhang et al., IEEE SPL 2016; timesler/facenet-pytorch),
  batched over frames of equal size and run on the model's device. It finds the large greyscale portrait
  and the turned faces dlib's HOG misses.
* ``dlib``: dlib's HOG + linear SVM frontal detector (King, JMLR 2009) — the training pipeline's
  ``landmarks.backend: dlib`` detector, reached through the same :class:`au_ttt.data.landmarks.DlibBackend`
  object, so on a one-face frame its best box and landmarks equal what ``au-ttt landmarks`` stored.

Landmarks always come from dlib's 68-point shape predictor (Kazemi & Sullivan, CVPR 2014), as in training.
The predictor was trained on HOG boxes, which are square and sit lower and tighter than MTCNN's; an MTCNN
box is therefore mapped to a HOG-like square before fitting (side = 0.978·√(w·h), centre moved down 0.033·h:
medians over the real faces both detectors find; ``python -m au_ttt.predict.bench calibrate`` re-measures
them: 0.983 and 0.034 over 98 faces). That halves the landmark difference to the HOG-box fit (median NME
0.012 vs 0.025 with the raw MTCNN box).

Large frames: the detector sees a copy whose longer side is at most ``detect_size`` (2000 px by default; a
12000 px photo at full size took 7.8 GB and a minute in MTCNN's image pyramid); its boxes are mapped back,
and the landmarks and the crop come from the full frame. Faces smaller than ``min_face`` in that copy are
not searched. A frame whose shorter side is under ``min_face`` is not searched at all (no face).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from au_ttt.errors import InputError

__all__ = ["MTCNN_TO_HOG", "Face", "FaceConfig", "FaceFinder", "mtcnn_fit_box"]

# (side factor on sqrt(w·h), centre shift as a fraction of h): MTCNN box → HOG-like box (see module docstring)
MTCNN_TO_HOG = (0.978, 0.033)


@dataclass(frozen=True)
class FaceConfig:
    """How faces are found: detector choice and its thresholds."""

    detector: Literal["mtcnn", "dlib"] = "mtcnn"
    min_face: int = 20              # MTCNN: smallest face side searched, px (facenet-pytorch default)
    min_confidence: float = 0.9     # MTCNN: boxes with a lower face probability are dropped
    dlib_upsample: int = 1          # HOG image upsampling (1 finds ~40 px faces); training's value by default
    dlib_min_score: float = 0.0     # HOG: adjust_threshold, as DlibBackend uses
    device: str = "cpu"             # MTCNN's torch device
    detect_size: int = 2000         # longer side of the detector's copy of a larger frame, px (0: full size)

    def __post_init__(self) -> None:
        if self.detector not in ("mtcnn", "dlib"):
            raise InputError(f"detector {self.detector!r} is not one of 'mtcnn', 'dlib'")
        if self.min_face < 4 or not 0.0 <= self.min_confidence <= 1.0 or self.dlib_upsample < 0:
            raise InputError("min_face must be >= 4, min_confidence in [0, 1] and dlib_upsample >= 0")
        if self.detect_size and self.detect_size < 4 * self.min_face:
            raise InputError(f"--detect-size {self.detect_size}: use 0 (full size) or at least 4 × --min-face "
                             f"({4 * self.min_face})")


@dataclass(frozen=True)
class Face:
    """One detected face: box (x1, y1, x2, y2) in frame pixels, detector confidence, 68 points (68, 2)."""

    box: np.ndarray
    confidence: float
    points: np.ndarray


def mtcnn_fit_box(box: np.ndarray) -> tuple[int, int, int, int]:
    """The HOG-like square (left, top, right, bottom) the shape predictor is run in, for an MTCNN box."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    side = MTCNN_TO_HOG[0] * np.sqrt(max(w * h, 1.0))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + MTCNN_TO_HOG[1] * h
    return (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))


class FaceFinder:
    """``finder(images)`` → per image, its faces (box, confidence, 68 landmarks), in detector order."""

    def __init__(self, cfg: FaceConfig = FaceConfig()) -> None:
        from au_ttt.data.landmarks import DlibBackend

        self.cfg = cfg
        self.dlib = DlibBackend(cfg.dlib_upsample)   # its HOG detector and 68-point predictor, as in training
        self.mtcnn = None
        if cfg.detector == "mtcnn":
            try:
                from facenet_pytorch import MTCNN
            except ImportError as err:
                raise InputError("the MTCNN detector needs facenet-pytorch: `pip install --no-deps "
                                 "facenet-pytorch==2.6.0` (as `make setup` does), or use --detector dlib") from err
            self.mtcnn = MTCNN(keep_all=True, min_face_size=cfg.min_face, device=cfg.device)

    # -- detection ------------------------------------------------------------------------------------
    def too_small(self, image: np.ndarray) -> bool:
        """A frame whose shorter side is under ``min_face`` cannot hold a face the detector searches for (and
        MTCNN's image pyramid is then empty: facenet-pytorch fails with ``torch.cat(): expected a non-empty
        list``), so it is not searched: it is a frame without a face."""
        return min(image.shape[:2]) < self.cfg.min_face

    def detector_input(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        """(image the detector sees, x scale, y scale): downscaled (area averaging) so that its longer side
        is at most ``detect_size``, but never so far that its shorter side drops under ``min_face``."""
        import cv2

        h, w = image.shape[:2]
        cap = self.cfg.detect_size
        if not cap or max(h, w) <= cap:
            return image, 1.0, 1.0
        s = max(cap / max(h, w), self.cfg.min_face / min(h, w))
        if s >= 1.0:
            return image, 1.0, 1.0
        size = (max(1, round(w * s)), max(1, round(h * s)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA), size[0] / w, size[1] / h

    def _dlib_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        rects, scores, _ = self.dlib.detector.run(image, self.cfg.dlib_upsample, self.cfg.dlib_min_score)
        return [(np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64), float(s))
                for r, s in zip(rects, scores, strict=True)]

    def _mtcnn_boxes(self, images: list[np.ndarray]) -> list[list[tuple[np.ndarray, float]]]:
        """MTCNN on same-sized images in one batch (facenet-pytorch stacks them)."""
        assert self.mtcnn is not None
        boxes, probs = self.mtcnn.detect(np.stack(images) if len(images) > 1 else images[0])
        if len(images) == 1:
            boxes, probs = [boxes], [probs]
        out = []
        for b, p in zip(boxes, probs, strict=True):
            faces = []
            if b is not None:
                for box, prob in zip(np.asarray(b, np.float64), np.asarray(p, np.float64), strict=True):
                    if prob >= self.cfg.min_confidence:
                        faces.append((box, float(prob)))
            out.append(faces)
        return out

    def detect(self, images: list[np.ndarray]) -> list[list[tuple[np.ndarray, float, tuple[int, int, int, int]]]]:
        """Per image: (box, confidence, box the landmarks are fitted in), in the image's own pixels."""
        inputs: dict[int, tuple[np.ndarray, float, float]] = {}
        for i, im in enumerate(images):
            if not self.too_small(im):
                small = self.detector_input(im)
                if min(small[0].shape[:2]) >= self.cfg.min_face:
                    inputs[i] = small
        found: dict[int, list[tuple[np.ndarray, float]]] = {}
        if self.mtcnn is None:
            found = {i: self._dlib_boxes(small) for i, (small, _, _) in inputs.items()}
        else:
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i, (small, _, _) in inputs.items():
                by_shape.setdefault(small.shape, []).append(i)
            for idx in by_shape.values():
                found.update(zip(idx, self._mtcnn_boxes([inputs[i][0] for i in idx]), strict=True))
        out: list[list[tuple[np.ndarray, float, tuple[int, int, int, int]]]] = []
        for i in range(len(images)):
            faces = []
            for box, conf in found.get(i, []):
                if i in inputs and inputs[i][1:] != (1.0, 1.0):   # back to the frame's pixels
                    box = box / np.array([inputs[i][1], inputs[i][2]] * 2)
                fit = mtcnn_fit_box(box) if self.mtcnn is not None else tuple(round(float(v)) for v in box)
                faces.append((box, conf, fit))
            out.append(faces)
        return out

    # -- landmarks ------------------------------------------------------------------------------------
    def landmarks(self, image: np.ndarray, fit_box: tuple[int, int, int, int]) -> np.ndarray:
        """dlib's 68 points (68, 2) float32 in the box, exactly as DlibBackend computes them."""
        import dlib

        shape = self.dlib.predictor(image, dlib.rectangle(*(int(v) for v in fit_box)))
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def __call__(self, images: list[np.ndarray]) -> list[list[Face]]:
        out = []
        for image, found in zip(images, self.detect(images), strict=True):
            h, w = image.shape[:2]
            faces = []
            for box, conf, fit in found:
                clipped = np.clip(box, [0, 0, 0, 0], [w, h, w, h])
                faces.append(Face(clipped, conf, self.landmarks(image, fit)))
            out.append(faces)
        return out
