"""A tiny in-memory AU dataset with the AUFrameDataset interface: AU k brightens band k of the image.

Used where a test needs training dynamics but not the data pipeline (resume, DDP). Deterministic from
its seed; learnable, so F1 must beat the all-positive floor.
"""

import numpy as np
import torch


class ToyAUDataset(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int, aus=(1, 2, 4), size: int = 64, grid: int = 4):
        rng = np.random.default_rng(seed)
        self.aus, self.size, self.grid = tuple(aus), size, grid
        self.labels = (rng.random((n, len(self.aus))) < 0.4).astype(np.float32)
        self.label_mask = np.ones_like(self.labels, dtype=bool)
        self.label_mask[0, 0] = False                      # one unknown label, like BP4D's 9
        self.noise = rng.standard_normal((n, 3, size, size)).astype(np.float32) * 0.5
        self.masks = rng.random((len(self.aus), grid, grid)).astype(np.float32)
        self.rows = np.arange(n)                                      # positions "in the index", as AUFrameDataset
        self.subjects = np.array([f"T{i % 4}" for i in range(n)])    # four toy subjects (predictions.parquet)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        img = self.noise[i].copy()
        band = self.size // len(self.aus)
        for a in range(len(self.aus)):
            if self.labels[i, a]:
                img[a % 3, a * band:(a + 1) * band] += 1.5
        sign = np.where(self.labels[i] > 0, 1.0, -1.0).astype(np.float32)[:, None, None]
        return {"image": torch.from_numpy(img), "labels": torch.from_numpy(self.labels[i]),
                "label_mask": torch.from_numpy(self.label_mask[i]), "roi_masks": torch.from_numpy(self.masks),
                "heatmap": torch.from_numpy(self.masks * sign), "row": i}
