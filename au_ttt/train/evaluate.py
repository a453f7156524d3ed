"""Scoring a trained model on a dataset: per-frame probabilities, per-AU F1, the all-positive floor.

Within-domain scores every output against the same AUs; cross-domain passes ``out_index`` (model outputs)
and ``label_index`` (target labels) from :func:`au_ttt.metrics.cross_domain_columns`, so a BP4D model's
outputs [0, 1, 2, 3, 6] are compared with DISFA's AUs [0, 1, 2, 3, 5] (AUs 1, 2, 4, 6, 12).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from au_ttt.data.batch_transforms import model_images
from au_ttt.fileio import atomic_write
from au_ttt.metrics import all_positive_f1, f1_per_au
from au_ttt.train.heartbeat import Heartbeat
from au_ttt.train.runtime import autocast_for, worker_init

__all__ = ["evaluate_model", "predict", "write_predictions"]

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(model, dataset, device: torch.device, batch_size: int = 64, workers: int = 0,
            amp: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """(rows, probabilities (N, N_out)) of ``model`` over ``dataset`` in dataset order."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        worker_init_fn=worker_init if workers else None)
    rows, probs = [], []
    beat = Heartbeat(log, "scoring frames", len(dataset))
    for batch in loader:
        with autocast_for(device, amp):
            out = model(model_images(batch, device), batch["roi_masks"].to(device))
        probs.append(torch.sigmoid(out.logits.float()).cpu().numpy())
        rows.append(np.asarray(batch["row"]))
        beat.tick(len(rows[-1]))
    return np.concatenate(rows), np.concatenate(probs)


def evaluate_model(model, dataset, device: torch.device, batch_size: int = 64, workers: int = 0,
                   amp: str = "none", out_index: list[int] | None = None,
                   label_index: list[int] | None = None) -> dict[str, Any]:
    rows, probs = predict(model, dataset, device, batch_size, workers, amp)
    labels = np.where(dataset.label_mask, dataset.labels, -1).astype(np.int8)
    if out_index is not None:
        probs = probs[:, out_index]
    if label_index is not None:
        labels = labels[:, label_index]
    f1 = f1_per_au(labels, probs)
    floor = all_positive_f1(labels)
    return {"rows": rows, "probs": probs, "labels": labels, "f1": f1, "f1_mean": float(f1.mean()),
            "all_positive_f1": floor, "all_positive_f1_mean": float(floor.mean()), "frames": len(rows)}


def write_predictions(path: str | Path, dataset, result: dict[str, Any], aus) -> Path:
    """Per-frame probabilities and labels, so tables can be recomputed without rerunning models; ``subject``
    (of each frame, from ``dataset.subjects``) is what the tables' subject-level bootstrap resamples."""
    path = Path(path)
    subjects = pd.Series(np.asarray(dataset.subjects).astype(str), index=np.asarray(dataset.rows))
    frame = pd.DataFrame({"row": result["rows"], "subject": subjects.loc[result["rows"]].to_numpy()})
    for i, au in enumerate(aus):
        frame[f"prob_AU{au}"] = result["probs"][:, i].astype(np.float32)
        frame[f"label_AU{au}"] = result["labels"][:, i]
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
