"""Intervals, paired comparisons and reproduction verdicts for the tables, from each run's predictions.

Input: ``predictions.parquet`` in every run/evaluation directory (written by
:func:`au_ttt.train.evaluate.write_predictions`: ``row``, ``subject``, ``prob_AU*``, ``label_AU*`` per
frame). No model is run. Each file is checked against its ``metrics.json`` — the F1 per AU recomputed
from the frames must equal the reported one — so an interval always belongs to the number beside it.

Which comparisons the tables imply (data-driven: a row that is not there is not compared):

* Table III: every row against the row above it and against the first (baseline) row, once each;
* Table I: on each dataset, AU-TTT (this run) against every other method row tested on the same
  subjects (``others``: the same-protocol baseline rows, else our control rows of Table III);
* Table II: in each direction, AU-TTT against every other method's evaluation (``cross_others``).

Verdicts (real data only): every cell with a published number in :mod:`au_ttt.tables.published`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from au_ttt.data.protocol import CROSS_DOMAIN_AUS, TITLES, cross_pairs
from au_ttt.datasets import registry
from au_ttt.errors import InputError
from au_ttt.tables.collect import CONTROLS, PARTS, CrossResult, FoldGroup, fold_parts
from au_ttt.tables.intervals import (
    LEVEL,
    FoldCounts,
    Interval,
    NotPaired,
    Replicates,
    Resampler,
    Verdict,
    cell,
    difference,
    f1_from_counts,
    replicate,
)
from au_ttt.tables.published import TABLE1, TABLE2, TABLE3

__all__ = ["MIN_SUBJECTS", "PREDICTIONS", "Comparison", "Uncertainty", "ablation_pairs", "assess", "describe",
           "read_counts"]

PREDICTIONS = "predictions.parquet"
MIN_SUBJECTS = 10  # fewer test subjects in a fold than this: the notes call the intervals rough
_NAMES = TITLES
_TRAIN_RERUN = ("rerun `au-ttt train` for this fold (after a code update `snakemake` reruns it by itself); it "
                "rewrites predictions.parquet with the subject of every frame")
_EVAL_RERUN = "rerun the `au-ttt evaluate` that wrote this directory; it rewrites predictions.parquet"


def describe(resampler: Resampler) -> str:
    """The one sentence every table note and the report use to say what ``[lo, hi]`` is."""
    return (f"[lo, hi]: {100 * LEVEL:g} % percentile interval of a subject-level bootstrap — the test subjects of "
            f"each fold (Table II: of the test set) resampled with replacement ({resampler.resamples:,} resamples, "
            f"seed {resampler.seed}), F1 per AU recomputed from the resampled frames at threshold 0.5, then the "
            "mean over AUs and folds. It measures which subjects happened to be tested, not training randomness.")


def read_counts(run_dir: Path, aus: Sequence[int], f1: Mapping[str, float], rerun: str) -> FoldCounts:
    """Per-subject confusion counts of ``run_dir/predictions.parquet``, checked against ``f1`` (metrics.json)."""
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        raise InputError(f"{path}: not found; the intervals are computed from the per-frame probabilities every "
                         f"run writes; {rerun}")
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a truncated or foreign file
        raise InputError(f"{path}: not a readable parquet file ({type(err).__name__}); {rerun}") from None
    if "subject" not in frame.columns:
        raise InputError(f"{path}: has no `subject` column (written before subject ids were recorded per frame), "
                         f"so no subject-level interval can be computed; {rerun}")
    cols = [c for a in aus for c in (f"prob_AU{a}", f"label_AU{a}")]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: lacks columns {missing}; {rerun}")
    counts = FoldCounts.from_frames(frame["subject"].to_numpy(), frame[[f"label_AU{a}" for a in aus]].to_numpy(),
                                    frame[[f"prob_AU{a}" for a in aus]].to_numpy())
    mine = f1_from_counts(counts.tp[0].sum(0), counts.fp[0].sum(0), counts.fn[0].sum(0))
    for a, value in zip(aus, mine, strict=True):
        if abs(value - f1[f"AU{a}"]) > 1e-6:
            raise InputError(f"{path}: AU{a} F1 from the per-frame probabilities is {value:.6f}, metrics.json says "
                             f"{f1[f'AU{a}']:.6f}: the two files come from different evaluations; {rerun}")
    return counts


def _row_replicates(g: FoldGroup, resampler: Resampler) -> Replicates:
    """One row's folds; several runs of one test part (seeds) are stacked, not averaged away."""
    by_part: dict[int, list[FoldCounts]] = {}
    for r in g.runs:
        by_part.setdefault(r.test_part, []).append(read_counts(r.path, [int(au[2:]) for au in r.f1], r.f1,
                                                               _TRAIN_RERUN))
    try:
        folds = [FoldCounts.stack_seeds(by_part[p]) for p in sorted(by_part)]
    except NotPaired:
        raise InputError(f"{g.dataset} {g.variant}: runs of one test part were tested on different subjects "
                         f"({', '.join(str(r.path) for r in g.runs)}); pass runs of one frame index") from None
    return replicate(folds, resampler, list(g.runs[0].f1))


def _cross_replicates(r: CrossResult, resampler: Resampler) -> Replicates:
    """A cross-domain direction: one test set, resampled over its subjects; its seeds stacked."""
    from au_ttt.tables.collect import read_cross

    counts = [read_counts(p, CROSS_DOMAIN_AUS, r.f1 if p == r.path and not r.members else read_cross(p).f1,
                          _EVAL_RERUN) for p in r.paths]
    try:
        fold = FoldCounts.stack_seeds(counts)
    except NotPaired:
        raise InputError(f"{r.source} → {r.target}: the seeds were tested on different subjects "
                         f"({', '.join(map(str, r.paths))}); pass evaluations of one frame index") from None
    return replicate([fold], resampler, list(r.f1))


def row_key(g: FoldGroup) -> tuple[Path, ...]:
    return tuple(r.path for r in g.runs)


@dataclass(frozen=True)
class Comparison:
    """``a − b`` on the same test subjects; ``diff`` is None when no paired interval exists (``note`` why)."""

    table: str
    dataset: str
    a: str
    b: str
    against: str  # "row above", "baseline", "row above and baseline", "other method"
    diff: Interval | None
    note: str = ""

    @property
    def distinguishable(self) -> bool:
        """The 95 % interval of the difference excludes 0."""
        return self.diff is not None and self.diff.excludes_zero

    @property
    def finding(self) -> str:
        if self.diff is None:
            return self.note
        return "distinguishable from noise" if self.distinguishable else "not distinguishable (interval contains 0)"


def ablation_pairs(names: Sequence[str]) -> list[tuple[str, str, str]]:
    """Table III's comparisons (a, b, against): each row vs the row above and vs the first row, once each."""
    out = []
    for i, name in enumerate(names[1:], start=1):
        out.append((name, names[i - 1], "row above and baseline" if i == 1 else "row above"))
        if i > 1:
            out.append((name, names[0], "baseline"))
    return out


def _init(g: FoldGroup) -> str | None:
    """How the row's runs were initialised ("pretrained backbone"/"scratch"), from run.json; None if unknown."""
    inits = set()
    for r in g.runs:
        path = r.path / "run.json"
        if not path.is_file():
            if (r.path / "probe.json").is_file():  # au-ttt probe: nothing to initialise
                inits.add("a closed-form fit")
                continue
            return None
        try:
            inits.add("pretrained backbone" if json.loads(path.read_text()).get("pretrained") else "scratch")
        except (OSError, ValueError):
            return None
    return ", ".join(sorted(inits))


@dataclass
class Uncertainty:
    """Everything the tables and the report say about uncertainty; rows are keyed by their run paths."""

    resampler: Resampler
    rows: dict[tuple[Path, ...], Replicates]
    cross: dict[tuple[str, str], Replicates]
    comparisons: list[Comparison] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    cross_rows: dict[tuple[Path, ...], Replicates] = field(default_factory=dict)  # other methods' Table II cells

    def cross_of(self, r: CrossResult, au: str | None = None) -> Interval:
        """Interval of another method's Table II cell (its evaluation directories, one per seed)."""
        return cell(self.cross_rows[r.paths], au)

    def row(self, g: FoldGroup, au: str | None = None) -> Interval:
        """Interval of a Table I/III row (``au`` = "AU1", …; None = the mean over AUs)."""
        return cell(self.rows[row_key(g)], au)

    def cross_cell(self, key: tuple[str, str], au: str | None = None) -> Interval:
        return cell(self.cross[key], au)

    def fewest(self, groups: Iterable[FoldGroup] = (), cross: Iterable[tuple[str, str]] = ()) -> int:
        """Test subjects in the smallest fold of these rows (default: of every row)."""
        reps = [*(self.rows[row_key(g)] for g in groups), *(self.cross[k] for k in cross)]
        return min(r.min_subjects for r in (reps or [*self.rows.values(), *self.cross.values()]))

    def notes(self, groups: Iterable[FoldGroup] = (), cross: Iterable[tuple[str, str]] = ()) -> list[str]:
        """What ``[lo, hi]`` means, and a warning when a fold of these rows (default: all) has few subjects."""
        fewest = self.fewest(groups, cross)
        out = [describe(self.resampler)]
        if fewest < MIN_SUBJECTS:
            out.append(f"Only {fewest} test subjects in the smallest fold: with so few, a bootstrap interval is rough "
                       "(percentile intervals from few subjects tend to be too narrow); read it as indicative.")
        return out


def _compare(table: str, dataset: str, a: str, b: str, against: str, ga: FoldGroup, gb: FoldGroup,
             rows: Mapping[tuple[Path, ...], Replicates]) -> Comparison:
    try:
        diff: Interval | None = difference(rows[row_key(ga)], rows[row_key(gb)])
        note = ""
    except NotPaired as err:
        diff, note = None, f"not paired: {err}"
    init_a, init_b = _init(ga), _init(gb)
    if diff is not None and init_a and init_b and init_a != init_b:
        note = f"training differs besides the method: {a} from {init_a}, {b} from {init_b}"
    return Comparison(table, dataset, a, b, against, diff, note)


def _verdicts(within: Mapping[str, FoldGroup], cross: Mapping[tuple[str, str], CrossResult],
              ablation: Mapping[str, FoldGroup], unc: Uncertainty) -> list[Verdict]:
    """Every cell with a published AU-TTT number; Table III only when the ablation ran on BP4D, as the paper's."""
    paper1, paper2 = TABLE1[-1], TABLE2[-1]
    out = [Verdict(f"Table I {_NAMES[d]}", getattr(paper1, d), unc.row(g)) for d, g in within.items()]
    for s, t in cross_pairs():
        if (s, t) not in cross:
            continue
        published = getattr(paper2, f"{s}_to_{t}")
        for au, value in zip([*(f"AU{a}" for a in CROSS_DOMAIN_AUS), None], published, strict=True):
            if value is not None:
                out.append(Verdict(f"Table II {_NAMES[s]}→{_NAMES[t]} {au or 'Avg.'}", value,
                                   unc.cross_cell((s, t), au)))
    if ablation and next(iter(ablation.values())).dataset in registry.in_paper_table("III"):
        out += [Verdict(f"Table III {row.variant}", row.avg, unc.row(ablation[row.variant]))
                for row in TABLE3 if row.variant in ablation]
    return out


def _compare_cross(key: tuple[str, str], label: str, ours: Replicates, other: Replicates) -> Comparison:
    direction = f"{_NAMES[key[0]]}→{_NAMES[key[1]]}"
    try:
        return Comparison("Table II", direction, "AU-TTT (this run)", label, "other method", difference(ours, other))
    except NotPaired as err:
        return Comparison("Table II", direction, "AU-TTT (this run)", label, "other method", None,
                          f"not paired: {err}")


def assess(data: str, within: Mapping[str, FoldGroup], cross: Mapping[tuple[str, str], CrossResult],
           ablation: Mapping[str, FoldGroup], resampler: Resampler | None = None,
           others: Mapping[str, FoldGroup | Sequence[FoldGroup]] | None = None,
           cross_others: Mapping[str, Mapping[tuple[str, str], CrossResult]] | None = None) -> Uncertainty:
    """Read every run's predictions, bootstrap every row, compare the rows the tables imply, judge the cells.

    ``others``: rows of other methods for Table I's comparisons (label → its FoldGroup, or one per dataset);
    default: our control
    rows of Table III. ``cross_others``: other methods' Table II evaluations (label → direction → result),
    each compared with AU-TTT on the same target subjects. Verdicts only for ``data == "real"`` (SynthAU
    numbers are never paper numbers).
    """
    resampler = resampler or Resampler()
    listed = {label: [o] if isinstance(o, FoldGroup) else list(o) for label, o in (others or {}).items()}
    groups = [*within.values(), *ablation.values(), *(g for gs in listed.values() for g in gs)]
    rows = {row_key(g): _row_replicates(g, resampler) for g in {row_key(g): g for g in groups}.values()}
    unc = Uncertainty(resampler, rows, {k: _cross_replicates(r, resampler) for k, r in cross.items()})
    if others is None:
        listed = {f"{v} (our control)": [g] for v, g in ablation.items() if v in CONTROLS}
    for d, g in within.items():
        for label, other in ((label, o) for label, gs in listed.items() for o in gs):
            if other.dataset == d:
                unc.comparisons.append(_compare("Table I", _NAMES[d], "AU-TTT (this run)", label, "other method",
                                                g, other, rows))
    for label, results in (cross_others or {}).items():
        for key, r in results.items():
            unc.cross_rows[r.paths] = _cross_replicates(r, resampler)
            if key in unc.cross:
                unc.comparisons.append(_compare_cross(key, label, unc.cross[key], unc.cross_rows[r.paths]))
    for a, b, against in ablation_pairs(list(ablation)):
        unc.comparisons.append(_compare("Table III", _NAMES[ablation[a].dataset], a, b, against, ablation[a],
                                        ablation[b], rows))
    if data == "real" and fold_parts((*within.values(), *ablation.values())) == PARTS:
        unc.verdicts = _verdicts(within, cross, ablation, unc)  # a subset of folds is not the paper's protocol
    return unc
