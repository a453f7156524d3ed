"""Frame-level AU F1 (JAA-Net / ME-GraphAU practice) and the cross-domain AU mapping (FG-Net).

F1 is scikit-learn's binary F1 per AU at threshold 0.5 on the predicted probability; entries with an
unknown label are left out of that AU's F1 (JAA-Net's evaluation drops label 9); the reported number is
the mean over AUs. An AU with no positive label and no positive prediction gets F1 0 (``zero_division=0``,
the conservative choice), and the count of such AUs is reported.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from au_ttt.data.protocol import AUS, CROSS_DOMAIN_AUS, cross_domain_indices

__all__ = ["all_positive_f1", "cross_domain_columns", "f1_per_au"]


def f1_per_au(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5,
              mask: np.ndarray | None = None) -> np.ndarray:
    """Per-AU F1 (N_AU,) for labels (N, N_AU) in {1, 0, -1 = unknown} and probabilities (N, N_AU)."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    if labels.shape != probs.shape or labels.ndim != 2:
        raise ValueError(f"labels {labels.shape} and probabilities {probs.shape} must both be (N, N_AU)")
    valid = labels >= 0 if mask is None else np.asarray(mask, bool) & (labels >= 0)
    out = np.zeros(labels.shape[1])
    for a in range(labels.shape[1]):
        v = valid[:, a]
        if v.any():
            out[a] = f1_score(labels[v, a].astype(int), (probs[v, a] >= threshold).astype(int), zero_division=0)
    return out


def all_positive_f1(labels: np.ndarray) -> np.ndarray:
    """F1 of predicting every AU present in every frame: the floor a detector must beat."""
    labels = np.asarray(labels)
    return f1_per_au(labels, np.ones(labels.shape, dtype=np.float64))


def cross_domain_columns(source: str, target: str) -> tuple[list[int], list[int], tuple[int, ...]]:
    """(source output indices, target label indices, AU numbers) of the AUs shared across datasets.

    BP4D outputs [0, 1, 2, 3, 6] and DISFA outputs [0, 1, 2, 3, 5] both mean AUs 1, 2, 4, 6, 12.
    """
    if source not in AUS or target not in AUS:
        raise ValueError(f"cross-domain datasets must be among {sorted(AUS)}, got {source!r} → {target!r}")
    return cross_domain_indices(source), cross_domain_indices(target), CROSS_DOMAIN_AUS
