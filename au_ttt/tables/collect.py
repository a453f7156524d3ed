"""Read run outputs (``metrics.json`` + ``tracking.json``) and check each table has exactly its runs.

A within-domain run directory comes from ``au-ttt train`` (one dataset, one test part, one variant); a
cross-domain directory from ``au-ttt evaluate`` on the other dataset. Both ``metrics.json`` files are read
through the typed records the writers use (:mod:`au_ttt.train.records`). Every missing, duplicated or
malformed input is an :class:`InputError` naming the file (or the missing fold) and the command that
produces it, so a table is never built from a silently partial set of folds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from au_ttt.data.protocol import AUS, CROSS_DOMAIN_AUS, DATASETS, cross_pairs
from au_ttt.datasets import registry
from au_ttt.errors import InputError
from au_ttt.tables.published import VARIANTS
from au_ttt.train.records import BEST_KEY, CrossMetrics, FoldMetrics, load_json_object

__all__ = ["BEST_KEY", "PARTS", "CrossResult", "FoldGroup", "RunResult", "Tracking", "fold_parts", "fold_scope",
           "group_ablation",
           "group_cross", "group_within", "read_cross", "read_run"]

PARTS = (1, 2, 3)


def fold_scope(parts: Sequence[int]) -> str:
    """How a row's folds are described in every title and note: the paper's protocol, or the subset a run
    configured (``workflow.test_parts``), which is never the paper's 3-fold mean."""
    parts = tuple(sorted(parts))
    if parts == PARTS:
        return "3-fold average"
    return f"test part{'s' if len(parts) > 1 else ''} {', '.join(map(str, parts))} only ({len(parts)} of 3 folds)"
_TRAIN_HINT = ("au-ttt train --dataset {d} --test-part {p}{v} --index INDEX --crops CROPS --heatmaps HEATMAPS "
               "--out RUN_DIR")
_EVAL_HINT = ("au-ttt evaluate --run RUN_DIR(trained on {s}) --dataset {t} --index INDEX --crops CROPS "
              "--heatmaps HEATMAPS --out DIR")


@dataclass(frozen=True)
class Tracking:
    """Where a run is recorded in MLflow (ids are None when it was never mirrored)."""

    parent: str | None = None
    experiment_id: str | None = None
    run_id: str | None = None
    uri: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RunResult:
    """One fold of ``au-ttt train``; F1 values are fractions as written (tables show %)."""

    path: Path
    dataset: str
    test_part: int
    variant: str | None
    f1: dict[str, float]
    f1_mean: float
    floor: float  # all-positive F1 mean: what predicting "present" everywhere scores
    best: tuple[int, float] | None  # (epoch, F1 mean) of the best epoch on the test part: optimistic
    test_frames: int
    epoch_policy: str
    tracking: Tracking | None
    seed: int = 0  # train.seed of run.json (a training repeat of the same fold); 0 when the run has none


@dataclass(frozen=True)
class CrossResult:
    """One direction of the cross-domain evaluation (``au-ttt evaluate`` on the other dataset)."""

    path: Path
    source: str
    target: str
    test_set: str
    trained_on_parts: tuple[int, ...]
    variant: str | None
    f1: dict[str, float]
    f1_mean: float
    floor: float
    test_frames: int
    epoch_policy: str
    train_run: Path
    tracking: Tracking | None  # of this directory, if it has one
    train_tracking: Tracking | None  # of the training run that made the model
    # several seeds of one direction: their mean (F1 fields above) and every evaluation directory behind it
    members: tuple[Path, ...] = ()

    @property
    def paths(self) -> tuple[Path, ...]:
        """The evaluation directories whose predictions this result stands for (one per seed)."""
        return self.members or (self.path,)


@dataclass(frozen=True)
class FoldGroup:
    """The three folds (test parts 1, 2, 3) behind one table row, each trained with the same seeds.

    A fold's value is the mean over its seeds; the row's value the mean over folds, its std the std over
    the seed-averaged folds (the paper's ± convention). The seed spread is the intervals' business.
    """

    dataset: str
    variant: str | None
    runs: tuple[RunResult, ...]  # ordered by test part, then seed

    @property
    def parts(self) -> tuple[int, ...]:
        return tuple(sorted({r.test_part for r in self.runs}))

    def _fold_mean(self, values: Sequence[float]) -> tuple[float, float]:
        pct = [100.0 * v for v in values]
        return statistics.fmean(pct), statistics.stdev(pct) if len(pct) > 1 else 0.0

    def _per_part(self, value) -> list[float]:
        """``value(run)`` averaged over the seeds of each test part, in part order."""
        parts = sorted({r.test_part for r in self.runs})
        return [statistics.fmean(value(r) for r in self.runs if r.test_part == p) for p in parts]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted({r.seed for r in self.runs}))

    @property
    def folds(self) -> list[float]:
        return [100.0 * v for v in self._per_part(lambda r: r.f1_mean)]

    def part_means(self) -> dict[int, float]:
        """Seed-mean F1 (%) of each test part."""
        return dict(zip(sorted({r.test_part for r in self.runs}), self.folds, strict=True))

    @property
    def mean_std(self) -> tuple[float, float]:
        """3-fold mean and sample std (ddof 1) of the per-fold (seed-mean) mean F1, in %."""
        return self._fold_mean(self._per_part(lambda r: r.f1_mean))

    @property
    def floor(self) -> float:
        return self._fold_mean(self._per_part(lambda r: r.floor))[0]

    @property
    def best(self) -> float | None:
        """3-fold mean of the best-epoch-on-test F1 (optimistic); None if any fold lacks it."""
        if any(r.best is None for r in self.runs):
            return None
        return self._fold_mean(self._per_part(lambda r: r.best[1]))[0]  # type: ignore[index]

    def au_means(self) -> dict[str, float]:
        """3-fold mean F1 per AU, in %."""
        return {au: self._fold_mean(self._per_part(lambda r, au=au: r.f1[au]))[0] for au in self.runs[0].f1}

    @property
    def parents(self) -> list[str]:
        """MLflow parent names the folds were logged under (default: `au-ttt train`'s own default)."""
        names = {r.tracking.parent for r in self.runs if r.tracking and r.tracking.parent}
        return sorted(names) or [f"{self.dataset}/{self.variant or 'model'}"]


def fold_parts(groups: Iterable[FoldGroup]) -> tuple[int, ...]:
    """The test parts a set of rows holds (one ``--parts`` for every row: the grouping checks it)."""
    return tuple(sorted({p for g in groups for p in g.parts}))


def _metrics_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.name == "metrics.json" else path / "metrics.json"


def _fraction(value: float, path: Path, key: str) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"{path}: {key} = {value!r} is not an F1 fraction in [0, 1]; re-run the step that wrote it")
    return float(value)


def _f1(f1: dict[str, float], aus: Iterable[int], path: Path) -> dict[str, float]:
    want = [f"AU{a}" for a in aus]
    if sorted(f1) != sorted(want):
        raise InputError(f"{path}: f1 has AUs {sorted(f1)}, expected {want}; re-run the step that wrote it")
    return {au: _fraction(f1[au], path, f"f1.{au}") for au in want}


def _mean_f1(mean: float, f1: dict[str, float], path: Path) -> float:
    """``f1_mean``, checked against the per-AU values (a hand-edited file must not reach a table)."""
    mean = _fraction(mean, path, "f1_mean")
    if abs(mean - statistics.fmean(f1.values())) > 1e-6:
        raise InputError(f"{path}: f1_mean {mean} is not the mean of the per-AU f1 values "
                         f"({statistics.fmean(f1.values()):.6f}); re-run the step that wrote it")
    return mean


def read_tracking(run_dir: Path) -> Tracking | None:
    """``tracking.json`` of a run directory, or None when the run was not tracked."""
    path = run_dir / "tracking.json"
    if not path.is_file():
        return None
    data = load_json_object(path, "re-create it with `au-ttt train` (it writes tracking.json next to metrics.json)")
    ml = data.get("mlflow") or {}
    ids = {k: (str(ml[k]) if ml.get(k) is not None else None) for k in ("experiment_id", "run_id")}
    return Tracking(parent=data.get("parent"), uri=ml.get("tracking_uri"), error=ml.get("error"), **ids)


def read_seed(run_dir: Path) -> int:
    """``train.seed`` recorded in ``run_dir/run.json`` (0 when there is none: a probe, an older test fixture)."""
    path = run_dir / "run.json"
    if not path.is_file():
        return 0
    seed = (load_json_object(path, "re-create it with `au-ttt train`").get("train") or {}).get("seed", 0)
    return int(seed) if isinstance(seed, int) else 0


def read_run(path: str | Path) -> RunResult:
    """A within-domain fold from an ``au-ttt train`` run directory (or its metrics.json)."""
    mpath = _metrics_path(path)
    data = load_json_object(mpath, "run `au-ttt train` for this fold first")
    if "source" in data and "target" in data:
        raise InputError(f"{mpath}: is a cross-domain evaluation ({data['source']} → {data['target']}); "
                         "pass it to --table2, and `au-ttt train` run directories to --table1/--table3")
    m = FoldMetrics.from_json(data, str(mpath))
    if m.dataset not in DATASETS or m.test_part not in PARTS:
        raise InputError(f"{mpath}: dataset {m.dataset!r} / test_part {m.test_part!r} must be one of {DATASETS} / "
                         f"{PARTS}")
    if m.aus != AUS[m.dataset]:
        raise InputError(f"{mpath}: AUs {list(m.aus)} are not {m.dataset}'s {list(AUS[m.dataset])}")
    f1 = _f1(m.f1, AUS[m.dataset], mpath)
    best = (m.best.epoch, _fraction(m.best.f1_mean, mpath, f"{BEST_KEY}.f1_mean")) if m.best else None
    return RunResult(path=mpath.parent, dataset=m.dataset, test_part=m.test_part, variant=m.variant, f1=f1,
                     f1_mean=_mean_f1(m.f1_mean, f1, mpath),
                     floor=_fraction(m.all_positive_f1_mean, mpath, "all_positive_f1_mean"), best=best,
                     test_frames=m.test_frames, epoch_policy=m.epoch_policy, tracking=read_tracking(mpath.parent),
                     seed=read_seed(mpath.parent))


def read_cross(path: str | Path) -> CrossResult:
    """A cross-domain direction from an ``au-ttt evaluate`` output directory (or its metrics.json)."""
    mpath = _metrics_path(path)
    m = CrossMetrics.from_json(load_json_object(mpath, "run `au-ttt evaluate` with --dataset set to the other "
                                                       "dataset first"), str(mpath))
    if m.source not in DATASETS or m.target not in DATASETS or m.source == m.target:
        raise InputError(f"{mpath}: {m.source!r} → {m.target!r} is not a cross-domain evaluation (Table II needs "
                         f"source ≠ target among {DATASETS}); within-domain runs go to --table1")
    train_run = Path(m.run)
    f1 = _f1(m.f1, CROSS_DOMAIN_AUS, mpath)
    return CrossResult(
        path=mpath.parent, source=m.source, target=m.target, test_set=m.test_set,
        trained_on_parts=m.trained_on_parts, variant=m.variant, f1=f1, f1_mean=_mean_f1(m.f1_mean, f1, mpath),
        floor=_fraction(m.all_positive_f1_mean, mpath, "all_positive_f1_mean"), test_frames=m.test_frames,
        epoch_policy=m.epoch_policy, train_run=train_run, tracking=read_tracking(mpath.parent),
        train_tracking=read_tracking(train_run) if m.run and train_run.is_dir() else None)


def _folds(runs: list[RunResult], dataset: str, variant: str | None, what: str,
           parts: Sequence[int] = PARTS) -> FoldGroup:
    """One run per test part in ``parts`` (the protocol: 1, 2, 3) and seed, the same seeds on every part — else
    an error naming the gap and the command that fills it."""
    by_part: dict[int, list[RunResult]] = {}
    for r in runs:
        by_part.setdefault(r.test_part, []).append(r)
    name = f"{dataset}{' ' + variant if variant else ''}"
    extra = sorted(set(by_part) - set(parts))
    if extra:
        raise InputError(f"{what}: {name} has runs on test part(s) {', '.join(map(str, extra))}, outside --parts "
                         f"{' '.join(map(str, parts))} ({', '.join(str(r.path) for p in extra for r in by_part[p])});"
                         " pass only the configured folds, or add the part to --parts")
    for p, rs in by_part.items():
        seeds = [r.seed for r in rs]
        dup = next((s for s in seeds if seeds.count(s) > 1), None)
        if dup is not None:
            same = [r for r in rs if r.seed == dup]
            raise InputError(f"{what}: {dataset} test part {p} is given {len(same)} times with seed {dup} "
                             f"({', '.join(str(r.path) for r in same)}); pass one run directory per fold and seed")
    missing = [p for p in parts if p not in by_part]
    if missing:
        v = f" --variant {variant}" if variant else ""
        cmds = "; ".join(f"`{_TRAIN_HINT.format(d=dataset, p=p, v=v)}`" for p in missing)
        need = "3-fold mean needs parts 1, 2, 3" if tuple(parts) == PARTS else \
            f"--parts {' '.join(map(str, parts))} asks for them"
        raise InputError(f"{what}: {name} lacks test part(s) {', '.join(map(str, missing))} ({need}); produce them "
                         f"with {cmds} and pass the run directories")
    seeds = {p: sorted(r.seed for r in by_part[p]) for p in parts}
    if len({tuple(v) for v in seeds.values()}) > 1:
        raise InputError(f"{what}: {name} has different seeds per test part "
                         f"({'; '.join(f'part {p}: {v}' for p, v in seeds.items())}); a row averages the same seeds "
                         "on every fold — train the missing ones (`au-ttt train --seed N`)")
    return FoldGroup(dataset, variant, tuple(sorted((r for p in parts for r in by_part[p]),
                                                    key=lambda r: (r.test_part, r.seed))))


def group_within(runs: Sequence[RunResult], parts: Sequence[int] = PARTS) -> dict[str, FoldGroup]:
    """Table I: the folds ``parts`` (the protocol: all three) for each of BP4D and DISFA, one variant per
    dataset."""
    out = {}
    for d in registry.in_paper_table("I"):
        mine = [r for r in runs if r.dataset == d]
        variants = sorted({str(r.variant) for r in mine})
        if len(variants) > 1:
            raise InputError(f"--table1: {d} runs mix variants {variants} ({', '.join(str(r.path) for r in mine)}); "
                             "Table I takes the three folds of one model per dataset")
        hint = mine[0].variant if mine else (runs[0].variant if runs else None)  # for the error's command line
        out[d] = _folds(mine, d, hint, "--table1 (Table I)", parts)
    return out


# Our own extra Table III rows (not in the paper): variant name → the label every table and report shows.
CONTROLS: dict[str, str] = {"attention_control": "+ attention instead of TTT (our control, not in the paper)"}


def group_ablation(runs: Sequence[RunResult], parts: Sequence[int] = PARTS,
                   variants: Sequence[str] | None = None) -> dict[str, FoldGroup]:
    """Table III: the folds ``parts`` for each of ``variants`` (default: the paper's six, then any of our control
    variants (:data:`CONTROLS`) that has runs), all on one dataset (the paper: BP4D). A run configured with fewer
    variants passes them, and the table shows those rows only."""
    datasets = sorted({r.dataset for r in runs})
    if len(datasets) > 1:
        raise InputError(f"--table3: runs on {datasets}; the ablation is on one dataset (the paper: BP4D)")
    known = (*VARIANTS, *CONTROLS)
    bad_names = sorted(set(variants or ()) - set(known))
    if bad_names:
        raise InputError(f"--variants: {bad_names} are not Table III rows; choose from {', '.join(known)}")
    wanted = tuple(v for v in known if v in variants) if variants is not None else \
        (*VARIANTS, *(v for v in CONTROLS if any(r.variant == v for r in runs)))
    unknown = sorted({str(r.variant) for r in runs if r.variant not in wanted})
    if unknown:
        bad = [str(r.path) for r in runs if r.variant not in wanted][:3]
        raise InputError(f"--table3: variant(s) {unknown} in {', '.join(bad)} are not among the Table III rows asked "
                         f"for; train with --variant one of {', '.join(wanted)}, or list them in --variants")
    dataset = datasets[0] if datasets else registry.in_paper_table("III")[0]
    return {v: _folds([r for r in runs if r.variant == v], dataset, v, "--table3 (Table III)", parts) for v in wanted}


def _seed_of(r: CrossResult) -> int:
    return read_seed(r.train_run) if str(r.train_run) and r.train_run.is_dir() else 0


def _mean_of_seeds(rs: list[CrossResult]) -> CrossResult:
    """Several seeds of one direction as one result: F1 averaged, every directory kept for the intervals."""
    seeds = [_seed_of(r) for r in rs]
    dup = next((s for s in seeds if seeds.count(s) > 1), None)
    if dup is not None:
        raise InputError(f"--table2: {rs[0].source} → {rs[0].target} is given twice with seed {dup} "
                         f"({', '.join(str(r.path) for r, s in zip(rs, seeds, strict=True) if s == dup)}); pass one "
                         "evaluation directory per direction and seed")
    if len(rs) == 1:
        return rs[0]
    rs = [r for _, r in sorted(zip(seeds, rs, strict=True), key=lambda x: x[0])]
    f1 = {au: statistics.fmean(r.f1[au] for r in rs) for au in rs[0].f1}
    return replace(rs[0], f1=f1, f1_mean=statistics.fmean(r.f1_mean for r in rs),
                   members=tuple(r.path for r in rs))


def group_cross(results: Sequence[CrossResult], what: str = "--table2") -> dict[tuple[str, str], CrossResult]:
    """Table II: one evaluation per direction (BP4D → DISFA, DISFA → BP4D) and seed; seeds are averaged."""
    out: dict[tuple[str, str], list[CrossResult]] = {}
    for r in results:
        out.setdefault((r.source, r.target), []).append(r)
    for s, t in cross_pairs():
        if (s, t) not in out:
            raise InputError(f"{what} (Table II): no {s} → {t} evaluation; produce it with "
                             f"`{_EVAL_HINT.format(s=s, t=t)}` (a {s} model trained on two parts) and pass its "
                             "output directory")
    return {k: _mean_of_seeds(out[k]) for k in cross_pairs()}
