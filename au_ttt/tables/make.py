"""Build every table, Figure 1 and REPORT.md from run directories, and log one MLflow parent per row.

Every number gets its subject-level bootstrap interval (:mod:`au_ttt.tables.uncertainty`), computed from the
runs' ``predictions.parquet`` before anything is written, so a run without usable predictions stops the
command with nothing half-written. The interval bounds are logged next to each fold mean.

Parent names come from the runs' own ``tracking.json`` (``parent``), so the fold mean lands on the same
parent run the folds are nested under; untracked runs fall back to ``au-ttt train``'s default
``<dataset>/<variant or 'model'>``. MLflow trouble is a warning, never a failure: the files are the record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from au_ttt.fileio import atomic_write_text
from au_ttt.tables.baselines import BaselineRow, group_baselines
from au_ttt.tables.build import (
    DataKind,
    comparisons_table,
    reproduction_table,
    table1,
    table1_per_au,
    table2,
    table3,
)
from au_ttt.tables.collect import (
    PARTS,
    CrossResult,
    FoldGroup,
    group_ablation,
    group_cross,
    group_within,
    read_cross,
    read_run,
)
from au_ttt.tables.figure import figure_rows, write_figure1
from au_ttt.tables.intervals import Interval, Resampler
from au_ttt.tables.render import write_table
from au_ttt.tables.report import ReportInputs, render_report
from au_ttt.tables.tracked import table_metrics, write_curves, write_metrics
from au_ttt.tables.uncertainty import Uncertainty, assess, row_key

if TYPE_CHECKING:
    from au_ttt.settings import Settings

__all__ = ["TablesOutput", "make_tables", "row_metrics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TablesOutput:
    files: list[Path]
    parents: dict[str, tuple[str, str]]  # parent name → (experiment id, run id)
    tracking_status: str


def _bounds(name: str, interval: Interval) -> dict[str, float]:
    """``<name>.ci95_lo``/``.ci95_hi`` as fractions, like every other logged F1."""
    return {f"{name}.ci95_lo": interval.lo / 100, f"{name}.ci95_hi": interval.hi / 100}


def row_metrics(group: FoldGroup, unc: Uncertainty | None = None) -> dict[str, float]:
    """Fold summary logged on a row's parent run (fractions, like the fold runs' own metrics), with the
    subject-bootstrap interval of the fold mean (overall and per AU) when ``unc`` is given."""
    mean, std = group.mean_std
    out = {"f1_mean.fold_mean": mean / 100, "f1_mean.fold_std": std / 100,
           "all_positive_f1_mean.fold_mean": group.floor / 100,
           **{f"f1_{au}.fold_mean": v / 100 for au, v in group.au_means().items()}}
    if group.best is not None:
        out["optimistic_best_epoch_f1_mean.fold_mean"] = group.best / 100
    if unc is not None:
        out.update({"ci95.resamples": unc.resampler.resamples, "ci95.seed": unc.resampler.seed},
                   **_bounds("f1_mean.fold_mean", unc.row(group)))
        for au in group.au_means():
            out.update(_bounds(f"f1_{au}.fold_mean", unc.row(group, au)))
    return out


def _cross_metrics(key: tuple[str, str], r: CrossResult, unc: Uncertainty, baseline: Any = None
                   ) -> dict[str, float]:
    """A Table II row's cells with their intervals (AU-TTT's, or a same-protocol ``baseline``'s)."""
    def interval(au: str | None) -> Interval:
        return unc.cross_of(r, au) if baseline is not None else unc.cross_cell(key, au)

    out = {"cross.f1_mean": r.f1_mean, "cross.all_positive_f1_mean": r.floor,
           **{f"cross.f1_{au}": v for au, v in r.f1.items()}, **_bounds("cross.f1_mean", interval(None)),
           "ci95.resamples": unc.resampler.resamples, "ci95.seed": unc.resampler.seed}
    for au in r.f1:
        out.update(_bounds(f"cross.f1_{au}", interval(au)))
    return out


def _cross_parent(r: CrossResult) -> str:
    return r.tracking.parent if r.tracking and r.tracking.parent else f"table2/{r.source}_to_{r.target}"


def _claim(claimed: dict[str, frozenset[Path]], name: str, table: str, group: FoldGroup) -> str:
    """A parent name for this row; if another row with other runs already took it (two untracked run sets
    falling back to the same default), prefix the table so neither row's fold mean overwrites the other's."""
    runs = frozenset(r.path for r in group.runs)
    if claimed.get(name, runs) != runs:
        logger.warning("MLflow parent %r already holds another row's folds; logging %s's row as %r",
                       name, table, f"{table}/{name}")
        name = f"{table}/{name}"
    claimed[name] = runs
    return name


def _log_rows(tracking: Any, rows: Sequence[tuple[str, dict[str, float]]]) -> tuple[dict[str, tuple[str, str]], str]:
    """Log each row's metrics on its parent run; returns the ids and a one-line status for the report."""
    if tracking is None or not tracking.enabled:
        return {}, "tracking is disabled in the config (`tracking.enabled: false`); links go to local run folders."
    ids: dict[str, tuple[str, str]] = {}
    try:
        from au_ttt.train.tracking import ensure_experiment, log_parent_metrics

        exp = ensure_experiment(tracking)
        for name, metrics in rows:
            ids[name] = (exp, log_parent_metrics(tracking, name, metrics))
    except Exception as err:  # tracking must never stop the tables
        logger.warning("MLflow logging of table rows failed (%s: %s); tables are written anyway",
                       type(err).__name__, err)
        return ids, f"logging the table rows failed ({type(err).__name__}: {str(err)[:200]})."
    # the store as the config names it (relative to the project): the report must not carry this machine's paths
    return ids, f"fold means logged to the store in `{tracking.uri_dir}/`, experiment `{tracking.experiment}`."


def _tracked_rows(within: Mapping[str, FoldGroup], cross: Mapping[tuple[str, str], CrossResult],
                  ablation: Mapping[str, FoldGroup], baselines: Sequence[BaselineRow], unc: Uncertainty
                  ) -> tuple[list[tuple[str, dict[str, float]]], dict[int, list[str]], dict[tuple[str, str], str]]:
    """The MLflow parent runs the table numbers are logged on: (parent name, metrics) rows, each fold group's
    parent names (keyed by ``id``) and each cross-domain direction's parent name."""
    rows: list[tuple[str, dict[str, float]]] = []
    row_parents: dict[int, list[str]] = {}  # id(FoldGroup) → the parent names its numbers were logged on
    claimed: dict[str, frozenset[Path]] = {}
    shared = {row_key(a) for a in ablation.values()}  # our control's BP4D folds are Table III's own runs
    base = [g for b in baselines for g in b.within.values() if row_key(g) not in shared]
    for table, g in [*(("table1", g) for g in within.values()), *(("table3", g) for g in ablation.values()),
                     *(("baselines", g) for g in base)]:
        row_parents[id(g)] = [_claim(claimed, name, table, g) for name in g.parents]
        rows += [(name, row_metrics(g, unc)) for name in row_parents[id(g)]]
    cross_parents = {k: _cross_parent(r) for k, r in cross.items()}
    rows += [(cross_parents[k], _cross_metrics(k, r, unc)) for k, r in cross.items()]
    rows += [(f"table2/{b.variant}/{s}_to_{t}", _cross_metrics((s, t), r, unc, b)) for b in baselines
             for (s, t), r in b.cross.items()]
    return rows, row_parents, cross_parents


def make_tables(data: DataKind, table1_runs: Sequence[str | Path], table2_dirs: Sequence[str | Path],
                table3_runs: Sequence[str | Path], out: str | Path, *, config: str = "config/config.yaml",
                settings: Settings | None = None, resampler: Resampler | None = None,
                baseline_runs: Sequence[str | Path] = (), baseline_cross: Sequence[str | Path] = (),
                parts: Sequence[int] = PARTS, ablation_variants: Sequence[str] | None = None) -> TablesOutput:
    """Validate the runs, write tables/, figures/figure1.png and REPORT.md under ``out``.

    Args:
        data: "synthau" (titles say synthetic, no published numbers) or "real" (paper rows + differences).
        table1_runs: `au-ttt train` run directories, test parts 1–3 of BP4D and of DISFA.
        table2_dirs: `au-ttt evaluate` directories, one per direction.
        table3_runs: run directories, test parts 1–3 of each of the six Table III variants.
        out: results directory.
        config: config path shown in the report.
        settings: loaded project config (tracking section, variant check marks); None = no MLflow logging.
        resampler: bootstrap resamples and seed of the intervals (default: 10,000 resamples, the fixed seed).
        baseline_runs: run directories of same-protocol baselines (timm ViT/ResNet, our attention control, the
            HOG + LR probe), three folds per dataset and seed: rows of Table I, compared with AU-TTT.
        baseline_cross: their cross-domain evaluation directories: rows of Table II.
        parts: the folds every row must have (the protocol: 1, 2, 3); a run configured with fewer
            (``workflow.test_parts``) gets tables that say so and no reproduction verdicts.
        ablation_variants: the Table III rows (default: the paper's six plus any control with runs).
    """
    if data not in ("synthau", "real"):
        raise ValueError(f"data must be 'synthau' or 'real', got {data!r}")
    within = group_within([read_run(p) for p in table1_runs], parts)
    cross = group_cross([read_cross(p) for p in table2_dirs])
    ablation = group_ablation([read_run(p) for p in table3_runs], parts, ablation_variants)
    baselines = group_baselines([read_run(p) for p in baseline_runs], [read_cross(p) for p in baseline_cross], parts)
    others = {b.label: list(b.within.values()) for b in baselines} if baselines else None
    unc = assess(data, within, cross, ablation, resampler, others=others,
                 cross_others={b.label: b.cross for b in baselines if b.cross})
    tables = [table1(within, data, unc, baselines), table1_per_au(within, data, unc),
              table2(cross, data, unc, baselines),
              table3(ablation, data, settings, unc), comparisons_table(unc, data)]
    if data == "real" and unc.verdicts:
        tables.append(reproduction_table(unc))
    out = Path(out)
    files = [f for t in tables for f in write_table(t, out / "tables")]
    files.append(write_figure1(figure_rows(within, cross, data), out / "figures" / "figure1.png", data))
    files.append(write_metrics(out / "metrics.json", table_metrics(within, cross, ablation, baselines, unc)))
    curve_rows = {**{f"table1-{d}-{g.variant}": g for d, g in within.items()},
                  **{f"table3-{g.dataset}-{v}": g for v, g in ablation.items()},
                  **{f"baseline-{d}-{b.variant}": g for b in baselines for d, g in b.within.items()}}
    files += write_curves(curve_rows, out)

    rows, row_parents, cross_parents = _tracked_rows(within, cross, ablation, baselines, unc)
    parents, status = _log_rows(getattr(settings, "tracking", None), rows)

    from au_ttt.train.provenance import git_state

    report = render_report(ReportInputs(data=data, config=config, tables=tables, within=within, cross=cross,
                                        ablation=ablation, parents=parents, cross_parents=cross_parents,
                                        row_parents=row_parents, uncertainty=unc,
                                        tracking_status=status, git=git_state(), baselines=baselines))
    files.append(atomic_write_text(out / "REPORT.md", report))
    return TablesOutput(files, parents, status)
