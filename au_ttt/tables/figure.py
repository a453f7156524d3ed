"""Figure 1 of the paper, redrawn from the tables: within- vs cross-domain mean F1 per method.

Within = mean of the BP4D and DISFA within-domain F1 (Table I); cross = mean of the two directions'
Avg. (Table II). With real data the published methods present in both tables are drawn beside this run;
with SynthAU only this run and the all-positive floor, under a title that says the data are synthetic.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from au_ttt.fileio import atomic_write_text
from au_ttt.tables.build import SYNTHETIC, DataKind
from au_ttt.tables.collect import CrossResult, FoldGroup
from au_ttt.tables.published import both_tables

__all__ = ["figure_rows", "write_figure1"]


def figure_rows(within: Mapping[str, FoldGroup], cross: Mapping[tuple[str, str], CrossResult],
                data: DataKind) -> list[tuple[str, float, float, str]]:
    """(label, within %, cross %, kind) bars; kind is "paper", "ours" or "floor"."""
    rows: list[tuple[str, float, float, str]] = []
    if data == "real":
        rows += [(f"{m}\n(paper)" if m == "AU-TTT" else m, w, c, "paper") for m, w, c in both_tables()]
    ours_w = sum(g.mean_std[0] for g in within.values()) / len(within)
    ours_c = sum(100 * r.f1_mean for r in cross.values()) / len(cross)
    rows.append(("AU-TTT\n(this run)", ours_w, ours_c, "ours"))
    floor_w = sum(g.floor for g in within.values()) / len(within)
    floor_c = sum(100 * r.floor for r in cross.values()) / len(cross)
    rows.append(("all-positive\nfloor", floor_w, floor_c, "floor"))
    return rows


def write_figure1(rows: Sequence[tuple[str, float, float, str]], path: str | Path, data: DataKind) -> Path:
    """Grouped bars (within, cross) per method with the gap written above each pair; PNG, atomic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    fig, ax = plt.subplots(figsize=(max(5.5, 1.25 * n + 1.5), 4.4), dpi=130)
    width = 0.38
    colours = {"paper": ("#9ecae1", "#3182bd"), "ours": ("#fdae6b", "#e6550d"), "floor": ("#d9d9d9", "#969696")}
    for i, (_, w, c, kind) in enumerate(rows):
        lw, lc = colours[kind]
        hatch = "//" if kind == "floor" else None
        ax.bar(i - width / 2, w, width, color=lw, edgecolor="black", linewidth=0.6, hatch=hatch)
        ax.bar(i + width / 2, c, width, color=lc, edgecolor="black", linewidth=0.6, hatch=hatch)
        ax.text(i - width / 2, w + 0.8, f"{w:.1f}", ha="center", va="bottom", fontsize=7)
        ax.text(i + width / 2, c + 0.8, f"{c:.1f}", ha="center", va="bottom", fontsize=7)
        ax.text(i, max(w, c) + 5.0, f"gap {w - c:+.1f}", ha="center", va="bottom", fontsize=7.5,
                fontweight="bold" if kind == "ours" else "normal")
    ax.set_xticks(range(n), [r[0] for r in rows], fontsize=8)
    top = max(max(r[1], r[2]) for r in rows)
    ax.set_ylim(0, max(100.0, top + 14))
    ax.set_ylabel("mean F1 (%)")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(facecolor="#bdbdbd", edgecolor="black", label="within-domain (mean of BP4D, DISFA)"),
                       Patch(facecolor="#525252", edgecolor="black", label="cross-domain (mean of B→D, D→B)"),
                       Patch(facecolor="none", edgecolor="none", label="gap = within − cross")],
              loc="upper right", fontsize=7.5, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    if data == "synthau":
        ax.set_title(f"{SYNTHETIC}\nwithin- vs cross-domain F1 (Figure 1 layout)", fontsize=9.5, color="#b30000")
    else:
        ax.set_title("Within- vs cross-domain F1: published methods (Tables I–II of the paper) and this run\n"
                     "cross-domain numbers of DRML, JÂA-Net, ME-GraphAU: FG-Net's replication", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_text(path, buf.getvalue())
