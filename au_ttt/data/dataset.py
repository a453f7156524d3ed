"""PyTorch Dataset over (frame index rows of one split, aligned crops, AU-centre cache).

Each item is a dict:

- ``image`` float32 (3, S, S): ImageNet-normalised random (train) or centre (test) crop, S = 224;
- ``labels`` float32 (N_AU,) 0/1, missing (−1 in the index) → 0;  ``label_mask`` bool (N_AU,) True = known;
- ``roi_masks`` float32 (N_MASK, g, g): label-free location masks on the token grid (g = 224/16 = 14), for
  ``mask_aus`` (default: the label AUs; cross-domain evaluation passes the training dataset's AUs);
- ``heatmap`` float32 (N_AU, T, T): FG-Net signed targets at the supervision resolution (default 14);
- ``row`` int: the row's position in the full frame index (what every per-row file is aligned with).

Rows without a crop (no face, no landmark fit) are excluded at construction and counted in
``dataset.excluded``; they never reach training silently.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from au_ttt.data.align import crop_path, load_aligned
from au_ttt.data.heatmaps import HeatmapConfig, load_centre_cache, location_maps, signed_targets
from au_ttt.data.images import read_image
from au_ttt.data.protocol import AUS, train_parts
from au_ttt.data.transforms import PhotometricTransform, apply_centres, apply_image, sample_geometry
from au_ttt.errors import InputError

__all__ = ["AUFrameDataset", "benchmark_loader", "split_rows"]

log = logging.getLogger(__name__)


def split_rows(index: pd.DataFrame, test_part: int, split: str) -> np.ndarray:
    """Positions (in ``index``) of the train or test rows of the fold that tests on ``test_part``."""
    if split not in ("train", "test"):
        raise InputError(f"split {split!r} is not one of 'train', 'test'")
    parts = train_parts(test_part) if split == "train" else (test_part,)
    return np.flatnonzero(index["part"].isin(parts).to_numpy())


def _dataset_aus(index: pd.DataFrame) -> tuple[int, ...]:
    names = index["dataset"].unique().tolist()
    if len(names) != 1 or names[0] not in AUS:
        raise InputError(f"frame index must hold one of {sorted(AUS)}, found {names}; pass aus= explicitly")
    return AUS[names[0]]


class AUFrameDataset(Dataset):
    """Frames of ``index`` at positions ``rows`` (default all), read from an aligned crop store."""

    def __init__(self, index: pd.DataFrame, crops_dir: str | Path, heatmap_dir: str | Path,
                 rows: np.ndarray | None = None, train: bool = False, cfg: HeatmapConfig | None = None,
                 aus: tuple[int, ...] | None = None, mask_aus: tuple[int, ...] | None = None,
                 jitter: float = 0.4, random_crop: bool = True) -> None:
        cfg = cfg or HeatmapConfig()
        self.crops_dir, self.cfg, self.train, self.random_crop = Path(crops_dir), cfg, train, random_crop
        self.aus = tuple(aus) if aus is not None else _dataset_aus(index)
        aligned = load_aligned(crops_dir, index)
        if aligned.size != cfg.crop_size:
            raise InputError(f"{crops_dir}: crops are {aligned.size} px, heatmaps.crop_size {cfg.crop_size}")
        self.mask_aus = tuple(mask_aus) if mask_aus is not None else self.aus
        centres = load_centre_cache(heatmap_dir, aligned.points, aligned.valid, self.aus, cfg)
        mask_centres = centres if self.mask_aus == self.aus else load_centre_cache(
            heatmap_dir, aligned.points, aligned.valid, self.mask_aus, cfg)
        rows = np.arange(len(index)) if rows is None else np.asarray(rows, np.int64)
        keep = aligned.valid[rows]
        self.excluded = int((~keep).sum())
        if self.excluded:
            log.info("excluded %d of %d rows without an aligned crop (no face / no landmark fit)",
                     self.excluded, len(rows))
        self.rows = rows[keep]
        self.images = index["image"].to_numpy()[self.rows]
        self.subjects = index["subject"].astype(str).to_numpy()[self.rows]  # per-frame subject (predictions.parquet)
        self.centres, self.mask_centres = centres[self.rows], mask_centres[self.rows]
        raw = index[[f"AU{au}" for au in self.aus]].to_numpy()[self.rows].astype(np.float32)
        bad = ~np.isin(raw, (-1.0, 0.0, 1.0)) & ~np.isnan(raw)
        if bad.any():
            raise InputError(f"frame index labels must be 1, 0 or -1 (unknown); found {np.unique(raw[bad])}")
        self.label_mask = (raw == 0) | (raw == 1)
        self.labels = np.where(raw == 1, 1.0, 0.0).astype(np.float32)
        self.photometric = PhotometricTransform(train, jitter)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        cfg = self.cfg
        path = crop_path(self.crops_dir, self.images[i])
        image = read_image(path)
        if image.shape[:2] != (cfg.crop_size, cfg.crop_size):
            raise InputError(f"{path}: crop is {image.shape[:2]}, not {cfg.crop_size}²; rerun `au-ttt crops`")
        g = sample_geometry(cfg.crop_size, cfg.input_size, self.train, shift=self.random_crop)
        centres = apply_centres(self.centres[i], g, self.aus)
        mask_centres = apply_centres(self.mask_centres[i], g, self.mask_aus)
        roi = location_maps(mask_centres, cfg.grid, cfg.input_size, cfg.sigma_px, cfg.cutoff)
        loc = roi if cfg.target_size == cfg.grid and self.mask_aus == self.aus else location_maps(
            centres, cfg.target_size, cfg.input_size, cfg.sigma_px, cfg.cutoff)
        return {
            "image": self.photometric(apply_image(image, g)),
            "labels": torch.from_numpy(self.labels[i]),
            "label_mask": torch.from_numpy(self.label_mask[i]),
            "roi_masks": torch.from_numpy(roi),
            "heatmap": torch.from_numpy(signed_targets(loc, self.labels[i], self.label_mask[i])),
            "row": int(self.rows[i]),
        }


def benchmark_loader(dataset: Dataset, batch_size: int = 32, workers: int = 0, batches: int = 10) -> dict:
    """Steady-state images per second of a shuffled DataLoader, cycling epochs as needed.

    Not timed: the first batch (worker start-up) and the batches the workers prefetched meanwhile
    (2 per worker, DataLoader's default prefetch_factor), which would otherwise inflate the rate.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0)

    def endless():
        while True:
            yield from loader

    it = endless()
    for _ in range(1 + 2 * workers):
        next(it)
    n, start = 0, time.perf_counter()
    for _ in range(batches):
        n += len(next(it)["row"])
    elapsed = time.perf_counter() - start
    return {"workers": workers, "batch_size": batch_size, "images": n, "seconds": round(elapsed, 3),
            "images_per_s": round(n / elapsed, 1)}
