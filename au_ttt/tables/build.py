"""Tables I–III (+ Table I per AU) as data: one :class:`Table` per output, before any formatting.

Numbers are F1 in %, kept at full precision (rounding happens only when rendering), so the difference
ours − paper is computed from the unrounded fold mean. With ``data="synthau"`` a table carries no
published number at all and its title says it is synthetic; with ``data="real"`` the paper's rows sit
beside this run's row, followed by the difference row (Tables I, II) or column (Table III).

Given an :class:`~au_ttt.tables.uncertainty.Uncertainty`, every number of this run (and every
difference to the paper) gets its 95 % subject-level bootstrap interval as the columns ``"<col> lo"`` and
``"<col> hi"`` (``"<col> seed sd"`` when several seeds exist); the renderer shows ``value [lo, hi]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from au_ttt.data.protocol import AUS, CROSS_DOMAIN_AUS, TITLES, cross_pairs
from au_ttt.datasets.registry import in_paper_table
from au_ttt.tables.baselines import BaselineRow
from au_ttt.tables.collect import CONTROLS, PARTS, CrossResult, FoldGroup, fold_parts, fold_scope
from au_ttt.tables.intervals import Interval
from au_ttt.tables.published import ABLATION_COLUMNS, OURS, TABLE1, TABLE2, TABLE3
from au_ttt.tables.uncertainty import Uncertainty, row_key

if TYPE_CHECKING:
    from au_ttt.settings import Settings

__all__ = ["SYNTHETIC", "DataKind", "Table", "comparisons_table", "config_marks", "reproduction_table", "table1",
           "table1_per_au", "table2", "table3"]

DataKind = Literal["synthau", "real"]
SYNTHETIC = "SynthAU (synthetic data) — not comparable to the paper"
NAMES = TITLES
PAPER, MINE, DIFF, REF = "paper", "this run", "this run − paper", "reference"  # the `source` column
BASE = "baseline (this pipeline)"  # `source` of a same-protocol baseline row
# the `Rows` column of Tables I and II: where a row's numbers come from
ROWS = {PAPER: "published (copied from the paper)", MINE: "same protocol (this pipeline)",
        BASE: "same protocol (this pipeline)", DIFF: "difference", REF: "reference (labels only)"}
CONTROL_SOURCE = "our control (not in the paper)"  # Table III `source` of a control row
_FOLD_NOTE = ("Each value is the mean over the three subject-exclusive folds (test parts 1, 2, 3) of that fold's "
              "mean F1 over AUs (JAA-Net: \"the result is the average of three folds\"); F1 per AU at "
              "threshold 0.5, frame level.")


def _scope(groups: Iterable[FoldGroup]) -> str:
    """The folds behind a table's rows, as its title says it ("3-fold average" under the protocol)."""
    return fold_scope(fold_parts(groups) or PARTS)


def _fold_note(groups: Iterable[FoldGroup], data: DataKind) -> str:
    """The protocol note, or — for a run configured with fewer folds — what its numbers are instead."""
    parts = fold_parts(groups)
    if not parts or parts == PARTS:
        return _FOLD_NOTE
    paper = " The paper's numbers beside them are 3-fold means: the difference is not a reproduction test." \
        if data == "real" else ""
    std = " The std over folds is undefined with one fold (shown as 0)." if len(parts) == 1 else ""
    return (f"Folds of this run: {fold_scope(parts)}, as `workflow.test_parts` configured it — not the protocol's "
            f"three folds: each value is the mean over those folds of the fold's mean F1 over AUs.{std}{paper}")


@dataclass
class Table:
    """One output table: ``frame`` (all columns, full precision) is the CSV; ``display`` what md/tex show."""

    name: str
    title: str
    frame: pd.DataFrame
    display: list[str]
    notes: list[str] = field(default_factory=list)
    signed: list[str] = field(default_factory=list)  # columns formatted with a sign (differences)
    groups: list[tuple[str, int]] | None = None  # LaTeX header row spanning display columns
    labels: dict[str, str] = field(default_factory=dict)  # LaTeX labels under `groups`


def _put(row: dict[str, Any], col: str, value: float, interval: Interval | None) -> None:
    """``row[col] = value`` and, when known, its interval columns (the one place their names are made)."""
    row[col] = value
    if interval is not None:
        row[f"{col} lo"], row[f"{col} hi"] = interval.lo, interval.hi
        if interval.seed_sd is not None:
            row[f"{col} seed sd"] = interval.seed_sd


def _notes(unc: Uncertainty | None, groups: Any = (), cross: Any = ()) -> list[str]:
    return unc.notes(groups, cross) if unc is not None else []


def _title(data: DataKind, text: str) -> str:
    return f"{SYNTHETIC}. {text}" if data == "synthau" else text


def _policy_note(groups: list[Any]) -> str:
    policies = sorted({r.epoch_policy for g in groups for r in (g.runs if isinstance(g, FoldGroup) else [g])})
    return f"Epoch policy: {', '.join(policies)} (the reported number; best-epoch-on-test values are in REPORT.md, " \
        "labelled optimistic)."


def _ours_label(variant: str | None, full: bool = True) -> str:
    name = OURS if full or variant is None else f"{OURS} [{variant}]"
    return f"{name} (this run)"


def _with_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows with their `Rows` label (published / same protocol / reference) first."""
    frame = pd.DataFrame(rows)
    frame.insert(0, "Rows", frame["source"].map(ROWS))
    return frame


def _baseline_within(b: BaselineRow, unc: Uncertainty | None) -> dict[str, Any]:
    row: dict[str, Any] = {"source": BASE, "Method": b.label, "Venue": "this pipeline", "variant": b.variant}
    for d, g in b.within.items():
        col = NAMES[d]
        _put(row, col, g.mean_std[0], unc.row(g) if unc and row_key(g) in unc.rows else None)
        row.update({f"{col} std": g.mean_std[1], **{f"{col} test{p}": v for p, v in g.part_means().items()}})
    return row


def table1(groups: Mapping[str, FoldGroup], data: DataKind, unc: Uncertainty | None = None,
           baselines: Sequence[BaselineRow] = ()) -> Table:
    """Table I: within-domain mean F1 per dataset; same-protocol baseline rows under this run's."""
    rows: list[dict[str, Any]] = []
    if data == "real":
        for r in TABLE1:
            rows.append({"source": PAPER, "Method": r.label + (" (paper)" if r.method == OURS else ""),
                         "Venue": r.venue, **{NAMES[d]: getattr(r, d) for d in in_paper_table("I")}})
    variants = {g.variant for g in groups.values()}
    full = variants <= {None, "au_roi_ttt"}
    ours: dict[str, Any] = {"source": MINE, "Method": _ours_label(next(iter(variants)), full), "Venue": MINE}
    floor: dict[str, Any] = {"source": REF, "Method": "All-positive floor (this run's test folds)", "Venue": MINE}
    for d, g in groups.items():
        col = NAMES[d]
        mean, std = g.mean_std
        _put(ours, col, mean, unc.row(g) if unc else None)
        ours.update({f"{col} std": std, f"{col} variant": g.variant,
                     **{f"{col} test{p}": v for p, v in g.part_means().items()},
                     f"{col} optimistic best-epoch": g.best, f"{col} seeds": len(g.seeds)})
        floor[col] = g.floor
    rows.append(ours)
    rows += [_baseline_within(b, unc) for b in baselines]
    if data == "real":
        paper = TABLE1[-1]
        diff: dict[str, Any] = {"source": DIFF, "Method": "Difference (this run − paper)", "Venue": ""}
        for d, g in groups.items():
            published = getattr(paper, d)
            _put(diff, NAMES[d], ours[NAMES[d]] - published, unc.row(g).minus(published) if unc else None)
        rows.append(diff)
    rows.append(floor)
    frame = _with_rows(rows)
    cols = [NAMES[d] for d in groups]
    display = ["Rows", "Method", "Venue", *cols] if data == "real" else ["Rows", "Method", *cols]
    every = [*groups.values(), *(g for b in baselines for g in b.within.values())]
    notes = [_fold_note(groups.values(), data), *_notes(unc, groups.values()), _policy_note(every),
             "Sample std over folds (ddof 1; the paper's ± convention), per-fold values, interval bounds and "
             "best-epoch numbers are in table1.csv.", *_baseline_notes(baselines, data)]
    if data == "real":
        notes.append("Paper rows: Table I of arXiv 2503.23450 (AU-TTT pretrained on ImageNet-1K).")
    title = _title(data, f"Table I — within-domain mean F1 (%) on {' and '.join(cols)}, {_scope(every)}")
    return Table("table1", title, frame, display, notes)


def _au_parts(g: FoldGroup, au: str) -> dict[int, float]:
    """Seed-mean F1 (%) of one AU per test part."""
    parts = sorted({r.test_part for r in g.runs})
    return {p: 100 * sum(r.f1[au] for r in g.runs if r.test_part == p) / sum(r.test_part == p for r in g.runs)
            for p in parts}


def table1_per_au(groups: Mapping[str, FoldGroup], data: DataKind, unc: Uncertainty | None = None) -> Table:
    """Table I per AU: the 3-fold mean F1 of each AU (the paper prints only the averages)."""
    aus = sorted({a for d in groups for a in AUS[d]})
    rows = []
    for au in aus:
        row: dict[str, Any] = {"AU": f"AU{au}"}
        for d, g in groups.items():
            if au in AUS[d]:
                _put(row, NAMES[d], g.au_means()[f"AU{au}"], unc.row(g, f"AU{au}") if unc else None)
                row.update({f"{NAMES[d]} test{p}": v for p, v in _au_parts(g, f"AU{au}").items()})
        rows.append(row)
    avg: dict[str, Any] = {"AU": "Avg."}
    for d, g in groups.items():
        _put(avg, NAMES[d], g.mean_std[0], unc.row(g) if unc else None)
        avg.update({f"{NAMES[d]} test{p}": v for p, v in g.part_means().items()})
    frame = pd.DataFrame([*rows, avg])
    text = f"Table I per AU — within-domain F1 (%) of this run, per AU, {_scope(groups.values())}"
    notes = [_fold_note(groups.values(), data), *_notes(unc, groups.values()),
             "The paper reports no per-AU within-domain F1, so there is nothing to compare with. \"–\": the AU is "
             "not annotated in that dataset. Per-fold values are in table1_per_au.csv."]
    return Table("table1_per_au", _title(data, text), frame, ["AU", *(NAMES[d] for d in groups)], notes)


def _cross_cols(short: str) -> list[str]:
    return [f"{short} AU{a}" for a in CROSS_DOMAIN_AUS] + [f"{short} Avg."]


def _baseline_notes(baselines: Sequence[BaselineRow], data: DataKind) -> list[str]:
    if not baselines:
        return []
    out = ["Same-protocol rows (this pipeline): " + "; ".join(b.label for b in baselines) + " — trained and scored "
           "by this DAG on the same folds, test subjects, crops, loader, threshold and epoch policy as AU-TTT, so "
           "their intervals and the paired comparisons (comparisons.md) apply; a row's initialisation may differ "
           "from AU-TTT's (comparisons.md says so)."]
    if data == "real":
        out.append("Published rows are copied from the paper: other crops, splits and thresholds, no interval.")
    return out


def table2(results: Mapping[tuple[str, str], CrossResult], data: DataKind, unc: Uncertainty | None = None,
           baselines: Sequence[BaselineRow] = ()) -> Table:
    """Table II: cross-domain per-AU F1, BP4D → DISFA and DISFA → BP4D; same-protocol baselines under ours."""
    b2d, d2b = _cross_cols("B→D"), _cross_cols("D→B")
    rows: list[dict[str, Any]] = []
    if data == "real":
        for r in TABLE2:
            rows.append({"source": PAPER, "Method": r.label + (" (paper)" if r.method == OURS else ""),
                         **dict(zip(b2d, r.bp4d_to_disfa, strict=True)),
                         **dict(zip(d2b, r.disfa_to_bp4d, strict=True))})
    ours: dict[str, Any] = {"source": MINE, "Method": _ours_label(None)}
    floor: dict[str, Any] = {"source": REF, "Method": "All-positive floor (this run's test set)"}
    intervals: dict[str, Interval] = {}
    for cols, key in zip((b2d, d2b), cross_pairs(), strict=True):
        res = results[key]
        for c, au in zip(cols, [*(f"AU{a}" for a in CROSS_DOMAIN_AUS), None], strict=True):
            if unc is not None:
                intervals[c] = unc.cross_cell(key, au)
            _put(ours, c, 100 * (res.f1[au] if au else res.f1_mean), intervals.get(c))
        floor[cols[-1]] = 100 * res.floor
    rows.append(ours)
    for b in (b for b in baselines if b.cross):
        row: dict[str, Any] = {"source": BASE, "Method": b.label}
        for cols, key in zip((b2d, d2b), cross_pairs(), strict=True):
            res = b.cross[key]
            for c, au in zip(cols, [*(f"AU{a}" for a in CROSS_DOMAIN_AUS), None], strict=True):
                iv = unc.cross_of(res, au) if unc is not None and res.paths in unc.cross_rows else None
                _put(row, c, 100 * (res.f1[au] if au else res.f1_mean), iv)
        rows.append(row)
    if data == "real":
        paper = TABLE2[-1]
        published = dict(zip(b2d + d2b, paper.bp4d_to_disfa + paper.disfa_to_bp4d, strict=True))
        diff: dict[str, Any] = {"source": DIFF, "Method": "Difference (this run − paper)"}
        for c, v in published.items():
            if v is not None:
                _put(diff, c, ours[c] - v, intervals[c].minus(v) if c in intervals else None)
        rows.append(diff)
    rows.append(floor)
    bounds = [f"{c} {b}" for c in b2d + d2b for b in ("lo", "hi", "seed sd") if any(f"{c} {b}" in r for r in rows)]
    frame = _with_rows([{k: r.get(k) for k in ["source", "Method", *b2d, *d2b, *bounds]} for r in rows])
    sets = [f"{NAMES[s]}→{NAMES[t]}: {r.test_set}, model trained on {NAMES[s]} parts "
            f"{', '.join(map(str, r.trained_on_parts)) or '?'}" for (s, t), r in results.items()]
    notes = ["AUs 1, 2, 4, 6, 12 (shared by both datasets) of the unchanged source model are scored; Avg. is "
             "their mean. B→D = BP4D → DISFA, D→B = DISFA → BP4D.",
             "Test sets — " + "; ".join(sets) + ".", *_notes(unc, cross=results),
             _policy_note([*results.values(), *(r for b in baselines for r in b.cross.values())]),
             *_baseline_notes([b for b in baselines if b.cross], data)]
    if any("part" in r.test_set for r in results.values()):
        notes.append("A target *part* was scored (FG-Net's code setting), not the entire target dataset that "
                     "the paper's text states.")
    if data == "real":
        notes.append("Paper rows: Table II of arXiv 2503.23450; * = FG-Net's replication with the open-source "
                     "code; \"–\" = not reported.")
    title = _title(data, "Table II — cross-domain F1 (%) between BP4D and DISFA "
                   f"({'; '.join(f'{NAMES[s]}→{NAMES[t]} on {r.test_set}' for (s, t), r in results.items())})")
    labels = {c: c.split(" ", 1)[1].removeprefix("AU") for c in b2d + d2b}
    return Table("table2", title, frame, ["Rows", "Method", *b2d, *d2b], notes,
                 groups=[("", 2), ("BP4D → DISFA", 6), ("DISFA → BP4D", 6)], labels={"Method": "AU", **labels})


def config_marks(model: Any) -> tuple[bool, ...]:
    """Table III check marks implied by a ModelConfig (how the config's variant was actually built)."""
    ttt = model.mixer == "ttt"
    row = model.ttt_mini_batch == "row"
    return (True, ttt and not row, bool(model.msp), ttt and row, ttt and bool(model.bidirectional),
            bool(model.au_roi))


def _ablation_row(label: str, g: FoldGroup, marks: Sequence[bool], data: DataKind, unc: Uncertainty | None,
                  paper_avg: float | None) -> dict[str, Any]:
    """One Table III row: check marks, this run's mean (with its interval) and, on real data, the paper's value
    and the difference (``None`` for our control rows, which have no paper value)."""
    mean, std = g.mean_std
    iv = unc.row(g) if unc else None
    row: dict[str, Any] = {"Variant": label, **{c: "✓" if m else "" for c, m in zip(ABLATION_COLUMNS, marks,
                                                                                   strict=True)}}
    if data == "real":
        row["Avg. (paper)"] = paper_avg
        _put(row, "Avg. (this run)", mean, iv)
        if paper_avg is None:
            row["Δ (this run − paper)"] = None
        else:
            _put(row, "Δ (this run − paper)", mean - paper_avg, iv.minus(paper_avg) if iv else None)
    else:
        _put(row, "Avg.", mean, iv)
    row.update({"Std (this run)": std, **{f"test{p}": v for p, v in g.part_means().items()},
                "All-positive floor": g.floor, "Optimistic best-epoch": g.best})
    return row


def _paper_row_marks(paper: Any, settings: Settings | None, notes: list[str]) -> tuple[bool, ...]:
    """The check marks of a paper row as this config builds it; a note when they differ from the paper's."""
    if settings is None or paper.variant not in settings.variants:
        return paper.marks
    built = config_marks(settings.model_for(paper.variant))
    if built != paper.marks:
        have = [c for c, m in zip(ABLATION_COLUMNS, built, strict=True) if m]
        want = [c for c, m in zip(ABLATION_COLUMNS, paper.marks, strict=True) if m]
        notes.append(f"Config variant {paper.variant!r} ({settings.source}) has components {have}, not "
                     f"the paper's {want}; the marks show the config.")
    return built


def table3(groups: Mapping[str, FoldGroup], data: DataKind, settings: Settings | None = None,
           unc: Uncertainty | None = None) -> Table:
    """Table III: the six ablation rows, 3-fold mean F1, with the paper's check-mark columns, then our control
    rows (``CONTROLS``, e.g. attention instead of TTT), labelled as ours and without a paper value."""
    rows, notes = [], []
    dataset = NAMES[next(iter(groups.values())).dataset]
    for paper in (p for p in TABLE3 if p.variant in groups):
        marks = _paper_row_marks(paper, settings, notes)
        rows.append({"source": "paper row",
                     **_ablation_row(paper.variant, groups[paper.variant], marks, data, unc, paper.avg)})
    for variant in (v for v in CONTROLS if v in groups):  # our extra rows: never a paper number beside them
        marks = config_marks(settings.model_for(variant)) if settings is not None and variant in settings.variants \
            else (True, False, True, False, False, True)
        rows.append({"source": CONTROL_SOURCE,
                     **_ablation_row(f"{variant}: {CONTROLS[variant]}", groups[variant], marks, data, unc, None)})
        notes.append(f"Row {variant!r} is our control, not in the paper: the Bi-TTT token mixer replaced by timm's "
                     "multi-head self-attention (ViT-S's own) inside the same backbone, MSP, AU RoI TTT, heads and "
                     "losses; the marks show its other components. It has no paper value.")
    frame = pd.DataFrame(rows)
    nums = ["Avg. (paper)", "Avg. (this run)", "Δ (this run − paper)"] if data == "real" else ["Avg."]
    floors = sorted({round(g.floor, 1) for g in groups.values()})
    left_out = [p.variant for p in TABLE3 if p.variant not in groups]
    if left_out:
        notes.append(f"Rows not run (the config's variants leave them out): {', '.join(left_out)}.")
    notes = [_fold_note(groups.values(), data), *_notes(unc, groups.values()),
             "Std (this run): sample std over the three folds (ddof 1), the paper's ± convention; the interval is the "
             "primary uncertainty.", _policy_note(list(groups.values())),
             f"All-positive floor on these test folds: {', '.join(f'{f:.1f}' for f in floors)} %.", *notes]
    if data == "real":
        notes.append("Paper column: Table III of arXiv 2503.23450 (BP4D, no ImageNet-1K pretraining).")
        if dataset != NAMES[in_paper_table("III")[0]]:
            notes.append(f"This ablation ran on {dataset}, the paper's on BP4D: the Δ column compares different "
                         "datasets.")
    scope = _scope(groups.values())
    title = _title(data, f"Table III — ablation of AU-TTT components on {dataset}, mean F1 (%), {scope}")
    return Table("table3", title, frame, ["Variant", *ABLATION_COLUMNS, *nums, "Std (this run)"], notes,
                 signed=["Δ (this run − paper)"])


def comparisons_table(unc: Uncertainty, data: DataKind) -> Table:
    """Every paired comparison the tables imply: a − b in F1 points, its interval, whether it is noise."""
    rows: list[dict[str, Any]] = []
    for c in unc.comparisons:
        row: dict[str, Any] = {"Table": c.table, "Dataset": c.dataset, "Comparison": f"{c.a} − {c.b}",
                               "Against": c.against}
        _put(row, "Difference (points)", c.diff.point if c.diff else None, c.diff)
        row.update({"Finding": c.finding, "Note": c.note if c.diff is not None else ""})
        rows.append(row)
    columns = ["Table", "Dataset", "Comparison", "Against", "Difference (points)", "Difference (points) lo",
               "Difference (points) hi", "Finding", "Note"]
    frame = pd.DataFrame(rows, columns=columns)
    notes = ["Paired: both rows are scored on the same test frames and every resample draws the same subjects for "
             "both, so what the two rows share (which subjects were tested) cancels. \"Distinguishable from noise\" "
             "= the 95 % interval of the difference excludes 0; each comparison is judged on its own, without a "
             "correction for multiple comparisons.", *unc.notes(),
             "Table III: each row against the row above it and against the baseline row; Table I: AU-TTT against "
             "every other method row tested on the same subjects."]
    title = _title(data, "Paired comparisons — difference in mean F1 (points) with its 95 % interval")
    display = ["Table", "Dataset", "Comparison", "Against", "Difference (points)", "Finding"]
    display += ["Note"] if (frame["Note"] != "").any() else []
    return Table("comparisons", title, frame, display, notes, signed=["Difference (points)"])


def reproduction_table(unc: Uncertainty) -> Table:
    """Real data: each cell with a published number — reproduced when it lies inside this run's interval."""
    rows: list[dict[str, Any]] = []
    for v in unc.verdicts:
        row: dict[str, Any] = {"Cell": v.cell, "Paper": v.published}
        _put(row, "This run", v.ours.point, v.ours)
        row["Verdict"] = "reproduced" if v.reproduced else "not reproduced"
        _put(row, "This run − paper", v.difference.point, v.difference)
        rows.append(row)
    frame = pd.DataFrame(rows)
    notes = ["Reproduced: the published number lies inside this run's 95 % interval. The interval covers the "
             "subjects tested, not training randomness or the paper's own uncertainty, so \"not reproduced\" "
             "means the difference is larger than subject sampling explains.", *unc.notes()]
    return Table("reproduction", "Reproduction verdicts — paper vs this run (F1 %)", frame,
                 ["Cell", "Paper", "This run", "Verdict", "This run − paper"], notes, signed=["This run − paper"])
