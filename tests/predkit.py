"""Fabricated ``predictions.parquet`` files whose F1 per AU is known exactly (for the table tests).

An F1 of p/q (a fraction with denominator ≤ 100) is 2tp / (2tp + fp + fn) with tp = cp and fp + fn = 2c(q − p);
the remaining frames of an AU are true negatives, two of them with an unknown label (−1) and a confident
positive prediction, which must count nowhere. Frames fall on the subjects unevenly (fixed seed), so the
subjects differ and a subject-level bootstrap has something to resample.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

# outcome → (label, probability)
_CODE = {"tp": (1, 0.9), "fp": (0, 0.8), "fn": (1, 0.2), "tn": (0, 0.1), "unknown": (-1, 0.95)}


def subjects_of(dataset: str, part: int, n: int = 4) -> list[str]:
    """The fake test subjects of one part (the same for every variant, so rows are paired)."""
    return [f"{dataset[0].upper()}{part}{i:02d}" for i in range(n)]


def write_predictions(out: Path, aus: Sequence[int], f1: Mapping[str, float], subjects: Sequence[str],
                      name: str = "") -> int:
    """``out/predictions.parquet`` with exactly ``f1`` per AU; returns its number of frames."""
    plan = {}
    for a in aus:
        frac = Fraction(f1[f"AU{a}"]).limit_denominator(100)
        scale = -(-60 // frac.numerator) if frac.numerator else 1  # ≥ 60 true positives: a smooth bootstrap
        tp = scale * frac.numerator
        errors = 2 * scale * (frac.denominator - frac.numerator) if tp else 2
        plan[a] = ["tp"] * tp + ["fp"] * (errors // 2) + ["fn"] * (errors - errors // 2)
    n = max(len(p) for p in plan.values()) + 10
    rng = np.random.default_rng(zlib.crc32(f"{out.name}{name}".encode()))
    frame = pd.DataFrame({"row": np.arange(n)})
    weights = rng.uniform(0.5, 1.5, len(subjects))
    frame["subject"] = np.asarray(subjects)[rng.choice(len(subjects), n, p=weights / weights.sum())]
    for a in aus:
        outcomes = plan[a] + ["unknown"] * 2 + ["tn"] * (n - len(plan[a]) - 2)
        codes = np.array([_CODE[o] for o in rng.permutation(outcomes)])
        frame[f"prob_AU{a}"] = codes[:, 1].astype(np.float32)
        frame[f"label_AU{a}"] = codes[:, 0].astype(np.int8)
    frame.to_parquet(out / "predictions.parquet", index=False)
    return n
