"""Subject-level bootstrap for the tables' F1 numbers: a cell's interval, a paired difference, a verdict.

Why subjects: the frames of one subject are strongly correlated (one face, one session, AU episodes that
last seconds), so what would change if the experiment were repeated is *which subjects* were recorded.
Resampling frames would treat every frame as independent and give intervals far too narrow. The
subjects are resampled with replacement *within each fold* (each fold's test part keeps its own
subjects: the protocol is subject-exclusive 3-fold cross-validation), and the statistic is recomputed
exactly as the tables compute it — F1 per AU from the pooled frames at threshold 0.5, the mean over AUs,
then the mean over the folds. The interval is the bootstrap percentile interval (Efron & Tibshirani,
*An Introduction to the Bootstrap*, 1993, ch. 13).

Cost: a fold is reduced once to per-subject confusion counts (tp, fp, fn per AU); a resample is then a
vector of how many times each subject was drawn (a multinomial draw) and its pooled counts one matrix
product, so 10,000 resamples of a whole table take well under a second.

Pairing: the draws of a fold depend only on (seed, the fold's sorted subject ids). Two models scored on
the same test subjects see the same resampled subjects — what a paired comparison needs — and a cell's
interval does not depend on which other cells were computed or in which order.

Shape legend: K seeds (training repeats of one cell; 1 today), S test subjects of one fold, A AUs,
B resamples, N frames. F1 is a fraction inside this module's arrays; an :class:`Interval` is in %, like
the tables.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LEVEL", "RESAMPLES", "SEED", "FoldCounts", "Interval", "NotPaired", "Replicates", "Resampler",
           "Verdict", "cell", "difference", "f1_from_counts", "replicate", "summary"]

RESAMPLES = 10_000  # resamples per interval: the 2.5 % tail then holds 250 draws
SEED = 20250331     # fixed, recorded in every table note and REPORT.md
LEVEL = 0.95
PERCENT = 100.0


class NotPaired(ValueError):
    """Two cells whose folds were tested on different subjects: no paired difference exists."""


@dataclass(frozen=True)
class FoldCounts:
    """Per-subject confusion counts of one fold's test set: ``tp``, ``fp``, ``fn`` (K, S, A) int64.

    ``subjects`` are sorted and unique (S,), so two models tested on the same subjects have aligned rows.
    """

    subjects: tuple[str, ...]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def from_frames(cls, subjects: Sequence[str] | np.ndarray, labels: np.ndarray, probs: np.ndarray,
                    threshold: float = 0.5) -> FoldCounts:
        """From frames: ``subjects`` (N,), ``labels`` (N, A) in {1, 0, −1 = unknown}, ``probs`` (N, A).

        A frame whose label is unknown for an AU counts nowhere for that AU, as in
        :func:`au_ttt.metrics.f1_per_au`; prediction = probability ≥ ``threshold``.
        """
        labels, probs = np.asarray(labels), np.asarray(probs)
        subjects = np.asarray(subjects).astype(str)
        if labels.shape != probs.shape or labels.ndim != 2 or len(subjects) != len(labels):
            raise ValueError(f"subjects {subjects.shape}, labels {labels.shape}, probabilities {probs.shape}: "
                             "expected (N,), (N, A), (N, A)")
        ids, inv = np.unique(subjects, return_inverse=True)
        pred, known = probs >= threshold, labels >= 0
        pos, neg = known & (labels == 1), known & (labels == 0)
        n_s, n_a = len(ids), labels.shape[1]
        cell_of = (inv[:, None] * n_a + np.arange(n_a)).ravel()  # (N·A,) flat (subject, AU) index

        def per_subject(hit: np.ndarray) -> np.ndarray:
            return np.bincount(cell_of, weights=hit.ravel(), minlength=n_s * n_a).reshape(1, n_s, n_a).astype(np.int64)

        return cls(tuple(ids.tolist()), per_subject(pos & pred), per_subject(neg & pred), per_subject(pos & ~pred))

    @property
    def seeds(self) -> int:
        return self.tp.shape[0]

    @staticmethod
    def stack_seeds(folds: Sequence[FoldCounts]) -> FoldCounts:
        """Runs of one fold that differ only in the training seed → one FoldCounts with K = len(folds)."""
        if not folds or any(f.subjects != folds[0].subjects for f in folds):
            raise NotPaired("seeds of one fold must be tested on the same subjects")
        return FoldCounts(folds[0].subjects, *(np.concatenate([getattr(f, k) for f in folds])
                                               for k in ("tp", "fp", "fn")))


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 = 2tp / (2tp + fp + fn), 0 where nothing is positive (scikit-learn's ``zero_division=0``)."""
    den = 2 * tp + fp + fn
    return np.divide(2.0 * tp, den, out=np.zeros(np.shape(den)), where=den > 0)


@dataclass(frozen=True)
class Resampler:
    """Draws of subjects: ``resamples`` multinomial draws per fold, seeded by (``seed``, the fold's subjects)."""

    resamples: int = RESAMPLES
    seed: int = SEED

    def weights(self, subjects: tuple[str, ...]) -> np.ndarray:
        """(B, S) float: how often each subject is drawn in each resample (every row sums to S); read-only."""
        return _weights(self.seed, self.resamples, tuple(subjects))


@functools.lru_cache(maxsize=64)  # every row of a table is tested on the same few folds: draw each once
def _weights(seed: int, resamples: int, subjects: tuple[str, ...]) -> np.ndarray:
    digest = hashlib.sha256("\x1f".join(subjects).encode()).digest()
    rng = np.random.default_rng([seed, *np.frombuffer(digest[:16], dtype=np.uint32).tolist()])
    n = len(subjects)
    out = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Replicates:
    """Fold-mean F1 per AU of one table row: ``observed`` (K, A) on the test sets as they are, ``draws``
    (K, B, A) on the resampled ones; ``folds`` the subjects of each fold (what pairing checks)."""

    observed: np.ndarray
    draws: np.ndarray
    folds: tuple[tuple[str, ...], ...]
    aus: tuple[str, ...] = ()  # column names ("AU1", …), so a cell can be asked for by name

    @property
    def seeds(self) -> int:
        return self.observed.shape[0]

    @property
    def min_subjects(self) -> int:
        return min(len(f) for f in self.folds)


def replicate(folds: Sequence[FoldCounts], resampler: Resampler, aus: Sequence[str] = ()) -> Replicates:
    """Observed and resampled fold-mean F1 per AU of the folds of one row (each fold resampled on its own)."""
    observed, draws = [], []
    for fold in folds:
        w = resampler.weights(fold.subjects)                                  # (B, S)
        sums = [w @ getattr(fold, k) for k in ("tp", "fp", "fn")]             # (K, B, A) pooled counts
        draws.append(f1_from_counts(*sums))                                   # (K, B, A)
        observed.append(f1_from_counts(*(getattr(fold, k).sum(axis=1) for k in ("tp", "fp", "fn"))))  # (K, A)
    return Replicates(np.mean(observed, axis=0), np.mean(draws, axis=0), tuple(f.subjects for f in folds),
                      tuple(aus))


@dataclass(frozen=True)
class Interval:
    """A number in % with its ``level`` interval [lo, hi]; ``seed_sd`` is the std over seeds (K > 1 only)."""

    point: float
    lo: float
    hi: float
    seeds: int = 1
    seed_sd: float | None = None

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    @property
    def excludes_zero(self) -> bool:
        """The difference is distinguishable from noise: its interval does not contain 0."""
        return not self.contains(0.0)

    def minus(self, value: float) -> Interval:
        """This interval less a constant (e.g. a published number): the interval of the difference."""
        return Interval(self.point - value, self.lo - value, self.hi - value, self.seeds, self.seed_sd)


def _statistic(reps: Replicates, au: int | str | None) -> tuple[np.ndarray, np.ndarray]:
    """(observed (K,), draws (K, B)): AU column ``au`` (position or name) or, for None, the mean over AUs."""
    if au is None:
        return reps.observed.mean(axis=-1), reps.draws.mean(axis=-1)
    a = reps.aus.index(au) if isinstance(au, str) else au
    return reps.observed[:, a], reps.draws[:, :, a]


def _percentile(draws: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(draws, [tail, 1.0 - tail])
    return PERCENT * float(lo), PERCENT * float(hi)


def cell(reps: Replicates, au: int | str | None = None, level: float = LEVEL) -> Interval:
    """Interval of one table cell (AU column ``au``, or the mean over AUs), averaged over seeds.

    Each resample averages the seeds' F1 under the same subject draw, so the interval is that of the
    seed-averaged number; the seed spread is reported beside it, not mixed into it.
    """
    observed, draws = _statistic(reps, au)
    lo, hi = _percentile(draws.mean(axis=0), level)
    sd = PERCENT * float(np.std(observed, ddof=1)) if reps.seeds > 1 else None
    return Interval(PERCENT * float(observed.mean()), lo, hi, reps.seeds, sd)


def difference(a: Replicates, b: Replicates, au: int | str | None = None, level: float = LEVEL) -> Interval:
    """Paired interval of a − b: both rows under the same subject draws of each fold.

    Raises :class:`NotPaired` when the rows' folds were tested on different subjects.
    """
    if a.folds != b.folds:
        raise NotPaired("the two rows were tested on different subjects")
    (obs_a, draws_a), (obs_b, draws_b) = _statistic(a, au), _statistic(b, au)
    lo, hi = _percentile(draws_a.mean(axis=0) - draws_b.mean(axis=0), level)
    return Interval(PERCENT * float(obs_a.mean() - obs_b.mean()), lo, hi, max(a.seeds, b.seeds))


@dataclass(frozen=True)
class Verdict:
    """One cell with a published number: reproduced when that number lies inside this run's interval."""

    cell: str
    published: float
    ours: Interval

    @property
    def reproduced(self) -> bool:
        return self.ours.contains(self.published)

    @property
    def difference(self) -> Interval:
        """This run − paper, with its interval (the paper's number is a constant)."""
        return self.ours.minus(self.published)


def summary(verdicts: Sequence[Verdict]) -> str:
    """``"k of n cells reproduced"``."""
    return f"{sum(v.reproduced for v in verdicts)} of {len(verdicts)} cells reproduced"
