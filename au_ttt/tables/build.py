"""Tables I–III (+ Table I per AU) as data: one :class:`Table` per output, before any formatting.

Numbers are F1 in %, kept at full precision (rounding happens only when rendering), so the difference
ours − paper is computed from the unrounded fold mean. With ``data="synthau"`` a table carries no
published number at all and its title says it is synthetic; with ``data="real"`` the paper's rows sit
beside this run's row, followed by the difference row (Tables I, II) or column (Table III).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from au_ttt.data.protocol import AUS, CROSS_DOMAIN_AUS
from au_ttt.tables.collect import CONTROLS, CrossResult, FoldGroup
from au_ttt.tables.published import ABLATION_COLUMNS, OURS, TABLE1, TABLE2, TABLE3

__all__ = ["SYNTHETIC", "DataKind", "Table", "config_marks", "table1", "table1_per_au", "table2", "table3"]

DataKind = Literal["synthau", "real"]
SYNTHETIC = "SynthAU (synthetic data) — not comparable to the paper"
NAMES = {"bp4d": "BP4D", "disfa": "DISFA"}
PAPER, MINE, DIFF, REF = "paper", "this run", "this run − paper", "reference"  # the `source` column
CONTROL_SOURCE = "our control (not in the paper)"  # Table III `source` of a control row
_FOLD_NOTE = ("Each value is the mean over the three subject-exclusive folds (test parts 1, 2, 3) of that fold's "
              "mean F1 over AUs (JAA-Net: \"the result is the average of three folds\"); F1 per AU at "
              "threshold 0.5, frame level.")


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


def _title(data: DataKind, text: str) -> str:
    return f"{SYNTHETIC}. {text}" if data == "synthau" else text


def _policy_note(groups: list[Any]) -> str:
    policies = sorted({r.epoch_policy for g in groups for r in (g.runs if isinstance(g, FoldGroup) else [g])})
    return f"Epoch policy: {', '.join(policies)} (the reported number; best-epoch-on-test values are in REPORT.md, " \
        "labelled optimistic)."


def _ours_label(variant: str | None, full: bool = True) -> str:
    name = OURS if full or variant is None else f"{OURS} [{variant}]"
    return f"{name} (this run)"


def table1(groups: Mapping[str, FoldGroup], data: DataKind) -> Table:
    """Table I: within-domain mean F1 per dataset."""
    rows: list[dict[str, Any]] = []
    if data == "real":
        for r in TABLE1:
            rows.append({"source": PAPER, "Method": r.label + (" (paper)" if r.method == OURS else ""),
                         "Venue": r.venue, "BP4D": r.bp4d, "DISFA": r.disfa})
    variants = {g.variant for g in groups.values()}
    full = variants <= {None, "au_roi_ttt"}
    ours: dict[str, Any] = {"source": MINE, "Method": _ours_label(next(iter(variants)), full), "Venue": MINE}
    floor: dict[str, Any] = {"source": REF, "Method": "All-positive floor (this run's test folds)", "Venue": MINE}
    for d, g in groups.items():
        col = NAMES[d]
        mean, std = g.mean_std
        ours.update({col: mean, f"{col} std": std, f"{col} variant": g.variant,
                     **{f"{col} test{r.test_part}": 100 * r.f1_mean for r in g.runs},
                     f"{col} optimistic best-epoch": g.best})
        floor[col] = g.floor
    rows.append(ours)
    if data == "real":
        paper = TABLE1[-1]
        rows.append({"source": DIFF, "Method": "Difference (this run − paper)", "Venue": "",
                     "BP4D": ours["BP4D"] - paper.bp4d, "DISFA": ours["DISFA"] - paper.disfa})
    rows.append(floor)
    frame = pd.DataFrame(rows)
    display = ["Method", "Venue", "BP4D", "DISFA"] if data == "real" else ["Method", "BP4D", "DISFA"]
    notes = [_FOLD_NOTE, _policy_note(list(groups.values())),
             "Sample std over folds (ddof 1), per-fold values and best-epoch numbers are in table1.csv."]
    if data == "real":
        notes.append("Paper rows: Table I of arXiv 2503.23450 (AU-TTT pretrained on ImageNet-1K).")
    title = _title(data, "Table I — within-domain mean F1 (%) on BP4D and DISFA, 3-fold average")
    return Table("table1", title, frame, display, notes)


def table1_per_au(groups: Mapping[str, FoldGroup], data: DataKind) -> Table:
    """Table I per AU: the 3-fold mean F1 of each AU (the paper prints only the averages)."""
    aus = sorted({a for d in groups for a in AUS[d]})
    rows = []
    for au in aus:
        row: dict[str, Any] = {"AU": f"AU{au}"}
        for d, g in groups.items():
            if au in AUS[d]:
                row[NAMES[d]] = g.au_means()[f"AU{au}"]
                row.update({f"{NAMES[d]} test{r.test_part}": 100 * r.f1[f"AU{au}"] for r in g.runs})
        rows.append(row)
    avg: dict[str, Any] = {"AU": "Avg."}
    for d, g in groups.items():
        avg[NAMES[d]] = g.mean_std[0]
        avg.update({f"{NAMES[d]} test{r.test_part}": 100 * r.f1_mean for r in g.runs})
    frame = pd.DataFrame([*rows, avg])
    text = "Table I per AU — within-domain F1 (%) of this run, 3-fold mean per AU"
    notes = [_FOLD_NOTE, "The paper reports no per-AU within-domain F1, so there is nothing to compare with. "
             "\"–\": the AU is not annotated in that dataset. Per-fold values are in table1_per_au.csv."]
    return Table("table1_per_au", _title(data, text), frame, ["AU", "BP4D", "DISFA"], notes)


def _cross_cols(short: str) -> list[str]:
    return [f"{short} AU{a}" for a in CROSS_DOMAIN_AUS] + [f"{short} Avg."]


def table2(results: Mapping[tuple[str, str], CrossResult], data: DataKind) -> Table:
    """Table II: cross-domain per-AU F1, BP4D → DISFA and DISFA → BP4D."""
    b2d, d2b = _cross_cols("B→D"), _cross_cols("D→B")
    rows: list[dict[str, Any]] = []
    if data == "real":
        for r in TABLE2:
            rows.append({"source": PAPER, "Method": r.label + (" (paper)" if r.method == OURS else ""),
                         **dict(zip(b2d, r.bp4d_to_disfa, strict=True)),
                         **dict(zip(d2b, r.disfa_to_bp4d, strict=True))})
    ours: dict[str, Any] = {"source": MINE, "Method": _ours_label(None)}
    floor: dict[str, Any] = {"source": REF, "Method": "All-positive floor (this run's test set)"}
    for cols, key in ((b2d, ("bp4d", "disfa")), (d2b, ("disfa", "bp4d"))):
        res = results[key]
        ours.update({c: 100 * res.f1[f"AU{a}"] for c, a in zip(cols, CROSS_DOMAIN_AUS, strict=False)})
        ours[cols[-1]] = 100 * res.f1_mean
        floor[cols[-1]] = 100 * res.floor
    rows.append(ours)
    if data == "real":
        paper = TABLE2[-1]
        published = dict(zip(b2d + d2b, paper.bp4d_to_disfa + paper.disfa_to_bp4d, strict=True))
        rows.append({"source": DIFF, "Method": "Difference (this run − paper)",
                     **{c: ours[c] - v for c, v in published.items() if v is not None}})
    rows.append(floor)
    frame = pd.DataFrame(rows, columns=["source", "Method", *b2d, *d2b])
    sets = [f"{NAMES[s]}→{NAMES[t]}: {r.test_set}, model trained on {NAMES[s]} parts "
            f"{', '.join(map(str, r.trained_on_parts)) or '?'}" for (s, t), r in results.items()]
    notes = ["AUs 1, 2, 4, 6, 12 (shared by both datasets) of the unchanged source model are scored; Avg. is "
             "their mean. B→D = BP4D → DISFA, D→B = DISFA → BP4D.",
             "Test sets — " + "; ".join(sets) + ".", _policy_note(list(results.values()))]
    if any("part" in r.test_set for r in results.values()):
        notes.append("A target *part* was scored (FG-Net's code setting), not the entire target dataset that "
                     "the paper's text states.")
    if data == "real":
        notes.append("Paper rows: Table II of arXiv 2503.23450; * = FG-Net's replication with the open-source "
                     "code; \"–\" = not reported.")
    title = _title(data, "Table II — cross-domain F1 (%) between BP4D and DISFA "
                   f"({'; '.join(f'{NAMES[s]}→{NAMES[t]} on {r.test_set}' for (s, t), r in results.items())})")
    labels = {c: c.split(" ", 1)[1].removeprefix("AU") for c in b2d + d2b}
    return Table("table2", title, frame, ["Method", *b2d, *d2b], notes,
                 groups=[("", 1), ("BP4D → DISFA", 6), ("DISFA → BP4D", 6)], labels={"Method": "AU", **labels})


def config_marks(model: Any) -> tuple[bool, ...]:
    """Table III check marks implied by a ModelConfig (how the config's variant was actually built)."""
    ttt = model.mixer == "ttt"
    row = model.ttt_mini_batch == "row"
    return (True, ttt and not row, bool(model.msp), ttt and row, ttt and bool(model.bidirectional),
            bool(model.au_roi))


def table3(groups: Mapping[str, FoldGroup], data: DataKind, settings: Any = None) -> Table:
    """Table III: the six ablation rows, 3-fold mean F1, with the paper's check-mark columns, then our control
    rows (``CONTROLS``, e.g. attention instead of TTT), labelled as ours and without a paper value."""
    rows, notes = [], []
    dataset = NAMES[next(iter(groups.values())).dataset]
    for paper in TABLE3:
        g = groups[paper.variant]
        marks = paper.marks
        if settings is not None and paper.variant in settings.variants:
            built = config_marks(settings.model_for(paper.variant))
            if built != marks:
                have = [c for c, m in zip(ABLATION_COLUMNS, built, strict=True) if m]
                want = [c for c, m in zip(ABLATION_COLUMNS, marks, strict=True) if m]
                notes.append(f"Config variant {paper.variant!r} ({settings.source}) has components {have}, not "
                             f"the paper's {want}; the marks show the config.")
                marks = built
        mean, std = g.mean_std
        row = {"Variant": paper.variant, **{c: "✓" if m else "" for c, m in zip(ABLATION_COLUMNS, marks, strict=True)}}
        if data == "real":
            row.update({"Avg. (paper)": paper.avg, "Avg. (this run)": mean, "Δ (this run − paper)": mean - paper.avg})
        else:
            row["Avg."] = mean
        row.update({"Std (this run)": std, **{f"test{r.test_part}": 100 * r.f1_mean for r in g.runs},
                    "All-positive floor": g.floor, "Optimistic best-epoch": g.best})
        rows.append({"source": "paper row", **row})
    for variant in (v for v in CONTROLS if v in groups):  # our extra rows: never a paper number beside them
        g = groups[variant]
        marks = config_marks(settings.model_for(variant)) if settings is not None and variant in settings.variants \
            else (True, False, True, False, False, True)
        mean, std = g.mean_std
        row = {"source": CONTROL_SOURCE, "Variant": f"{variant}: {CONTROLS[variant]}",
               **{c: "✓" if m else "" for c, m in zip(ABLATION_COLUMNS, marks, strict=True)}}
        row.update({"Avg. (paper)": None, "Avg. (this run)": mean, "Δ (this run − paper)": None} if data == "real"
                   else {"Avg.": mean})
        row.update({"Std (this run)": std, **{f"test{r.test_part}": 100 * r.f1_mean for r in g.runs},
                    "All-positive floor": g.floor, "Optimistic best-epoch": g.best})
        rows.append(row)
        notes.append(f"Row {variant!r} is our control, not in the paper: the Bi-TTT token mixer replaced by timm's "
                     "multi-head self-attention (ViT-S's own) inside the same backbone, MSP, AU RoI TTT, heads and "
                     "losses; the marks show its other components. It has no paper value.")
    frame = pd.DataFrame(rows)
    nums = ["Avg. (paper)", "Avg. (this run)", "Δ (this run − paper)"] if data == "real" else ["Avg."]
    floors = sorted({round(g.floor, 1) for g in groups.values()})
    notes = [_FOLD_NOTE, _policy_note(list(groups.values())),
             f"All-positive floor on these test folds: {', '.join(f'{f:.1f}' for f in floors)} %.", *notes]
    if data == "real":
        notes.append("Paper column: Table III of arXiv 2503.23450 (BP4D, no ImageNet-1K pretraining).")
        if dataset != "BP4D":
            notes.append(f"This ablation ran on {dataset}, the paper's on BP4D: the Δ column compares different "
                         "datasets.")
    title = _title(data, f"Table III — ablation of AU-TTT components on {dataset}, mean F1 (%), 3-fold average")
    return Table("table3", title, frame, ["Variant", *ABLATION_COLUMNS, *nums, "Std (this run)"], notes,
                 signed=["Δ (this run − paper)"])
