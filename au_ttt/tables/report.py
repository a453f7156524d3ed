"""``REPORT.md``: how the numbers were made, the tables inline, Figure 1, and a link per number.

Every row links to the MLflow parent run holding its fold mean/std, every fold to its own MLflow run
(``http://127.0.0.1:5000/#/experiments/<id>/runs/<id>``, served by ``au-ttt mlflow-ui``); where no MLflow
id exists the run directory's local path is given instead, with the reason.

Uncertainty is said in words too: which paired differences are distinguishable from noise and which are
not, and (real data) a first line "k of n cells reproduced" with a verdict per published cell.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from au_ttt.tables.baselines import BaselineRow
from au_ttt.tables.build import NAMES, SYNTHETIC, DataKind, Table
from au_ttt.tables.collect import CONTROLS, PARTS, CrossResult, FoldGroup, Tracking, fold_parts, fold_scope
from au_ttt.tables.intervals import Interval, summary
from au_ttt.tables.render import fmt, to_markdown
from au_ttt.tables.uncertainty import MIN_SUBJECTS, Comparison, Uncertainty, describe

__all__ = ["MLFLOW_UI", "ReportInputs", "mlflow_url", "render_report", "run_link"]

MLFLOW_UI = "http://127.0.0.1:5000"  # `au-ttt mlflow-ui` defaults (au_ttt/commands/mlflow_ui.py)


def mlflow_url(experiment_id: str, run_id: str) -> str:
    return f"{MLFLOW_UI}/#/experiments/{experiment_id}/runs/{run_id}"


def run_link(tracking: Tracking | None, path: Path | str) -> str:
    """``[run](url)`` when the run was mirrored to MLflow, else its local directory and why there is no link."""
    if tracking is not None and tracking.experiment_id and tracking.run_id:
        return f"[run]({mlflow_url(tracking.experiment_id, tracking.run_id)})"
    why = "no MLflow run" if tracking is None or not tracking.error else f"no MLflow run: {tracking.error[:80]}"
    return f"`{path}` ({why})"


@dataclass
class ReportInputs:
    """Everything the report shows; ``parents`` maps an MLflow parent name to (experiment id, run id)."""

    data: DataKind
    config: str
    tables: Sequence[Table]
    within: Mapping[str, FoldGroup]
    cross: Mapping[tuple[str, str], CrossResult]
    ablation: Mapping[str, FoldGroup]
    figure: str = "figures/figure1.png"
    parents: dict[str, tuple[str, str]] = field(default_factory=dict)
    cross_parents: dict[tuple[str, str], str] = field(default_factory=dict)
    row_parents: dict[int, list[str]] = field(default_factory=dict)  # id(FoldGroup) → its parent names
    uncertainty: Uncertainty | None = None
    tracking_status: str = ""
    git: Mapping[str, str] = field(default_factory=dict)
    baselines: Sequence[BaselineRow] = ()  # same-protocol rows of Tables I and II


def _parent_links(names: Sequence[str], parents: Mapping[str, tuple[str, str]]) -> str:
    links = [f"[{n}]({mlflow_url(*parents[n])})" if n in parents else f"`{n}` (not in MLflow)" for n in names]
    return ", ".join(links)


def _fold_table(rows: Mapping[str, FoldGroup], inp: ReportInputs) -> list[str]:
    out = ["| row | fold (test part) | F1 (%) | all-positive floor (%) | best epoch on test (optimistic) | "
           "test frames | link |", "|:---|---:|---:|---:|---:|---:|:---|"]
    for name, g in rows.items():
        mean, std = g.mean_std
        for r in g.runs:
            best = f"{100 * r.best[1]:.1f} (epoch {r.best[0]})" if r.best else "–"
            part = f"{r.test_part} (seed {r.seed})" if len(g.seeds) > 1 else f"{r.test_part}"
            out.append(f"| {name} | {part} | {100 * r.f1_mean:.1f} | {100 * r.floor:.1f} | {best} | "
                       f"{r.test_frames} | {run_link(r.tracking, r.path)} |")
        best = f"{g.best:.1f}" if g.best is not None else "–"
        ci = f" {_bracket(inp.uncertainty.row(g))}" if inp.uncertainty is not None else ""
        out.append(f"| **{name}** | **mean ± std** [95 % CI] | **{mean:.1f} ± {std:.1f}**{ci} | {g.floor:.1f} | "
                   f"{best} | | "
                   f"parent: {_parent_links(inp.row_parents.get(id(g), g.parents), inp.parents)} |")
    return out


def _cross_table(inp: ReportInputs) -> list[str]:
    out = ["| direction | Avg. F1 (%) | all-positive floor (%) | test set | test frames | evaluation | model run |",
           "|:---|---:|---:|:---|---:|:---|:---|"]
    for (s, t), r in inp.cross.items():
        name = inp.cross_parents.get((s, t))
        row_link = _parent_links([name], inp.parents) if name else "–"
        model = run_link(r.train_tracking, r.train_run) if str(r.train_run) else "–"
        out.append(f"| {NAMES[s]} → {NAMES[t]} | {100 * r.f1_mean:.1f} | {100 * r.floor:.1f} | {r.test_set} | "
                   f"{r.test_frames} | {run_link(r.tracking, r.path)}; row: {row_link} | {model} |")
    return out


def _ablation_rows(inp: ReportInputs) -> dict[str, FoldGroup]:
    """Table III groups by row name; our control rows carry their label (they are not paper rows)."""
    return {f"{name} ({CONTROLS[name]})" if name in CONTROLS else name: g for name, g in inp.ablation.items()}


def _optimistic(inp: ReportInputs) -> list[str]:
    out = ["| row | reported: last epoch (%) | best epoch on test (%) — optimistic |", "|:---|---:|---:|"]
    for label, groups in (("Table I", inp.within), ("Table III", _ablation_rows(inp))):
        for name, g in groups.items():
            best = f"{g.best:.1f}" if g.best is not None else "–"
            out.append(f"| {label} {NAMES.get(name, name)} | {g.mean_std[0]:.1f} | {best} |")
    return out


def _bracket(iv: Interval, signed: bool = False) -> str:
    return f"[{fmt(iv.lo, signed)}, {fmt(iv.hi, signed)}]"


def _said(c: Comparison) -> str:
    assert c.diff is not None
    return f"{c.table} ({c.dataset}), {c.a} − {c.b}: {fmt(c.diff.point, True)} points {_bracket(c.diff, True)}"


def _findings(unc: Uncertainty) -> list[str]:
    """The paired comparisons in words: distinguishable from noise or not."""
    real = [c for c in unc.comparisons if c.distinguishable]
    noise = [c for c in unc.comparisons if c.diff is not None and not c.distinguishable]
    unpaired = [c for c in unc.comparisons if c.diff is None]
    out = [f"Of {len(unc.comparisons)} paired comparisons the tables imply, **{len(real)} are distinguishable from "
           f"noise** (the 95 % interval of the difference excludes 0) and {len(noise)} are not"
           + (f"; {len(unpaired)} could not be paired" if unpaired else "") + ". Each is judged at 95 % on its own "
           "(no correction for making several): among rows that truly do not differ, about one comparison in "
           "twenty still comes out distinguishable.", ""]
    fewest = unc.fewest()
    if fewest < MIN_SUBJECTS:
        out += [f"**Caution:** only {fewest} test subjects in the smallest fold. With so few subjects the intervals "
                "are too narrow (in the simulation of `tests/test_intervals.py`, 4 subjects per fold gave 74 % "
                "coverage for a nominal 95 %), so \"distinguishable\" below is not evidence of a real difference.",
                ""]
    if real:
        out += ["Distinguishable from noise:", ""]
        out += [f"- {_said(c)} — {c.a} is {'better' if c.diff.point > 0 else 'worse'} than {c.b} beyond "
                "what the choice of test subjects explains" + (f" ({c.note})" if c.note else "") + "." for c in real]
        out.append("")
    if noise:
        out += ["Not distinguishable from noise (the interval contains 0: on these test subjects the two rows "
                "cannot be told apart, whatever the order of their means):", ""]
        out += [f"- {_said(c)}" + (f" ({c.note})" if c.note else "") + "." for c in noise]
        out.append("")
    out += [f"- {c.table} ({c.dataset}), {c.a} − {c.b}: {c.note}." for c in unpaired]
    return out


def _verdict_lines(unc: Uncertainty) -> list[str]:
    bad = [v for v in unc.verdicts if not v.reproduced]
    out = [f"{summary(unc.verdicts)}: the published number lies inside this run's 95 % interval."]
    if bad:
        out += ["", "Not reproduced (this run − paper, with its interval):", ""]
        out += [f"- {v.cell}: this run {fmt(v.ours.point)} {_bracket(v.ours)} vs paper {fmt(v.published)}; "
                f"difference {fmt(v.difference.point, True)} {_bracket(v.difference, True)}." for v in bad]
    return out


def _method_lines(inp: ReportInputs) -> list[str]:
    """The report's title, data warning and "How the numbers were made" section."""
    synthetic = inp.data == "synthau"
    title = f"# AU-TTT reproduction report — {SYNTHETIC}" if synthetic else \
        "# AU-TTT reproduction report — BP4D and DISFA (real data)"
    policies = sorted({r.epoch_policy for g in (*inp.within.values(), *inp.ablation.values()) for r in g.runs}
                      | {r.epoch_policy for r in inp.cross.values()})
    commit = inp.git.get("git.commit", "unknown")
    dirty = " (uncommitted changes)" if inp.git.get("git.dirty") == "true" else ""
    unc = inp.uncertainty
    lines = [title, ""]
    parts = fold_parts((*inp.within.values(), *inp.ablation.values()))
    partial = parts != PARTS
    if partial:
        lines += [f"> **{fold_scope(parts).capitalize()}.** This run was configured with fewer folds than the "
                  "protocol (`workflow.test_parts`): its within-domain numbers are not the 3-fold means the paper "
                  "reports" + (", so no cell gets a reproduction verdict." if not synthetic else "."), ""]
    elif unc is not None and not synthetic:
        lines += [f"**Reproduction: {summary(unc.verdicts)}** (the paper's number inside this run's 95 % "
                  "subject-level bootstrap interval; see [Reproduction verdicts](#reproduction-verdicts)).", ""]
    if synthetic:
        lines += ["> **Synthetic data.** Every number below comes from SynthAU, the generated stand-in for BP4D "
                  "and DISFA. It checks that the pipeline runs end to end; it says nothing about AU-TTT's accuracy "
                  "and is not comparable to the paper, so no published number is shown.", ""]
    lines += [
        f"Generated by `au-ttt tables` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, code at git "
        f"`{commit[:12]}`{dirty}.", "", "## How the numbers were made", "",
        f"- **Config**: `{inp.config}`; **data**: "
        + ("SynthAU (synthetic, generated by `au-ttt synth`)." if synthetic else "licensed BP4D and DISFA."),
        "- **Protocol**: subject-exclusive 3-fold cross-validation; a fold is named by the part it tests on and "
        "trains on the other two. A table value is the mean over the "
        + (f"folds this run trained — {fold_scope(parts)} —" if partial else "three folds")
        + " of each fold's mean F1 over AUs (F1 per AU at threshold 0.5, frame level); ± is the sample std over "
        "folds.",
        f"- **Epoch policy**: {', '.join(policies)} — the model after the final epoch is scored; no epoch is "
        "chosen on the test part. The best epoch on the test part is listed separately and labelled "
        "*optimistic*: it selects on the test data, so it is not a reported number.",
        "- **All-positive floor**: the F1 of predicting every AU present in every frame of the same test set — "
        "the number a detector has to beat. It stands next to every within-domain number below.",
        "- **Cross-domain**: the unchanged source model is scored on AUs 1, 2, 4, 6, 12 of the other dataset.",
        *([f"- **Intervals** (the primary uncertainty; fold mean ± std is kept as the paper's convention): "
           f"{describe(unc.resampler)} A difference between two rows is *paired*: both are scored on the same "
           "frames under the same subject draws; it is *distinguishable from noise* when its interval excludes "
           "0."] if unc is not None else []),
        f"- **MLflow**: {inp.tracking_status} Open the links with `au-ttt mlflow-ui --config {inp.config}` "
        f"({MLFLOW_UI}). A row links to its parent run (fold mean and std), a fold to its own run.", ""]
    return lines


def render_report(inp: ReportInputs) -> str:
    """The whole REPORT.md text."""
    synthetic = inp.data == "synthau"
    unc = inp.uncertainty
    lines = _method_lines(inp)
    by_name = {t.name: t for t in inp.tables}
    sections = [("table1", "## Table I — within-domain", lambda: _fold_table(
                    {**{NAMES[d]: g for d, g in inp.within.items()},
                     **{f"{b.label} — {NAMES[d]}": g for b in inp.baselines for d, g in b.within.items()}}, inp)),
                ("table1_per_au", "## Table I per AU", None),
                ("table2", "## Table II — cross-domain", lambda: _cross_table(inp)),
                ("table3", "## Table III — ablation", lambda: _fold_table(_ablation_rows(inp), inp))]
    for name, heading, runs in sections:
        if name not in by_name:
            continue
        lines += [heading, "", to_markdown(by_name[name], heading="###"),
                  f"Files: `tables/{name}.md`, `tables/{name}.tex`, `tables/{name}.csv`.", ""]
        if runs is not None:
            lines += ["Runs behind these numbers:", "", *runs(), ""]
    if unc is not None:
        lines += ["## Which differences are distinguishable from noise", "", *_findings(unc), ""]
        if "comparisons" in by_name:
            lines += [to_markdown(by_name["comparisons"], heading="###"),
                      "Files: `tables/comparisons.md`, `tables/comparisons.tex`, `tables/comparisons.csv`.", ""]
        if not synthetic and unc.verdicts:  # none when the run holds fewer folds than the protocol
            lines += ["## Reproduction verdicts", "", *_verdict_lines(unc), ""]
            if "reproduction" in by_name:
                lines += [to_markdown(by_name["reproduction"], heading="###"), "Files: `tables/reproduction.md`, "
                          "`tables/reproduction.tex`, `tables/reproduction.csv`.", ""]
    lines += ["## Figure 1 — within- vs cross-domain gap", "", f"![Figure 1]({inp.figure})", "",
              "Within = mean of the BP4D and DISFA within-domain F1 (Table I); cross = mean of the two directions' "
              "Avg. (Table II); gap = within − cross." + ("" if synthetic else " Published methods are those with "
              "numbers in both tables."), "",
              "## Best epoch on the test part (optimistic, not reported)", "", *_optimistic(inp), ""]
    return "\n".join(lines)
