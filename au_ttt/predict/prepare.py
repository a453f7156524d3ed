"""One face → exactly the (image, RoI masks) pair the training pipeline gives the model for that frame.

Training stores its intermediate images as JPEG and the model has only ever seen them that way: a DISFA
frame is written by ``au-ttt data frames`` (OpenCV, quality 95), the aligned crop by ``au-ttt crops``
(OpenCV, ``crops.jpeg_quality``), and both are decoded again before use. ``predict`` repeats those round
trips in memory (same encoder, same quality; the decoder is PIL, which gives the same pixels as OpenCV for
these files), so a frame scored here gets the probabilities ``au-ttt evaluate`` gives it.

Every other step is the training code itself: :func:`au_ttt.data.align.align_face` (similarity fit to the
68-point template), :func:`au_ttt.data.heatmaps.build_centre_cache` + ``location_maps`` (FG-Net AU centres →
RoI masks on the token grid), :func:`au_ttt.data.transforms.sample_geometry`/``apply_image``/``apply_centres``
(test-time centre crop) and :class:`~au_ttt.data.transforms.PhotometricTransform` (normalisation). Their
order and arguments follow ``AUFrameDataset.__getitem__``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

from au_ttt.data.align import AlignConfig, align_face
from au_ttt.data.heatmaps import HeatmapConfig, build_centre_cache, location_maps
from au_ttt.data.images import to_rgb8
from au_ttt.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PhotometricTransform, apply_centres, apply_image
from au_ttt.data.transforms import sample_geometry as _geometry
from au_ttt.errors import InputError

__all__ = ["PreparedFace", "PreprocessSpec", "jpeg_roundtrip", "prepare_face"]


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything between a frame and the model input, as the model was trained."""

    crops: AlignConfig
    heatmaps: HeatmapConfig
    mask_aus: tuple[int, ...]                 # AUs whose RoI masks the model reads (its own AUs)
    crop_jpeg_quality: int | None = 95        # `au-ttt crops` writes crops as JPEG at crops.jpeg_quality
    video_frame_jpeg_quality: int | None = 95  # `au-ttt data frames` writes video frames as JPEG (video.py)
    mean: tuple[float, ...] = tuple(IMAGENET_MEAN)
    std: tuple[float, ...] = tuple(IMAGENET_STD)

    def check(self, img_size: int, patch_size: int, source: str) -> None:
        """Refuse a spec the model or this code cannot honour."""
        hm = self.heatmaps
        problems = []
        if self.crops.size != hm.crop_size:
            problems.append(f"crops.size {self.crops.size} ≠ heatmaps.crop_size {hm.crop_size}")
        if hm.input_size != img_size:
            problems.append(f"heatmaps.input_size {hm.input_size} ≠ the model's img_size {img_size}")
        if hm.patch_size != patch_size:
            problems.append(f"heatmaps.patch_size {hm.patch_size} ≠ the model's patch_size {patch_size}")
        if not np.allclose(self.mean, IMAGENET_MEAN) or not np.allclose(self.std, IMAGENET_STD):
            problems.append(f"input normalisation mean {list(self.mean)} / std {list(self.std)} differs from this "
                            f"code's {list(IMAGENET_MEAN)} / {list(IMAGENET_STD)}")
        if problems:
            raise InputError(f"{source}: " + "; ".join(problems))


@dataclass
class PreparedFace:
    image: torch.Tensor      # (3, S, S) normalised
    roi_masks: torch.Tensor  # (N_AU, g, g)
    aligned: np.ndarray      # (68, 2) landmarks in the aligned crop


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode as OpenCV's ``imwrite`` does at ``quality``, decode again: what a stored JPEG gives back."""
    import cv2
    from PIL import Image

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InputError(f"OpenCV could not JPEG-encode a {rgb.shape} image")
    with Image.open(io.BytesIO(buf.tobytes())) as image:
        return to_rgb8(image)


_NORMALISE = PhotometricTransform(train=False)


def prepare_face(frame: np.ndarray, points: np.ndarray, spec: PreprocessSpec) -> PreparedFace | None:
    """Model input for the face with 68 ``points`` in ``frame`` (RGB uint8); None if no alignment fit."""
    res = align_face(frame, np.asarray(points, np.float32), spec.crops)
    if res is None:
        return None
    crop, aligned, _ = res
    if spec.crop_jpeg_quality:
        crop = jpeg_roundtrip(crop, spec.crop_jpeg_quality)
    hm = spec.heatmaps
    g = _geometry(hm.crop_size, hm.input_size, train=False)
    centres = build_centre_cache(aligned[None], np.ones(1, bool), spec.mask_aus)[0]
    roi = location_maps(apply_centres(centres, g, spec.mask_aus), hm.grid, hm.input_size, hm.sigma_px, hm.cutoff)
    return PreparedFace(_NORMALISE(apply_image(crop, g)), torch.from_numpy(roi), aligned)
