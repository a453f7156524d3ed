"""The tables' numbers and the training curves in the shapes DVC and the reports read.

Why: ``dvc metrics show`` / ``dvc exp show`` compare experiments through a metrics file, ``dvc plots`` through
plot files; the Snakemake report shows figures. Nothing here computes a new number: every value is a cell
of the tables (with its interval) or an epoch of a run's own ``history.json``.

* ``<out>/metrics.json``: ``table1.<dataset>.<row>`` / ``table2.<direction>.<row>`` / ``table3.<row>`` →
  ``{f1, ci95_lo, ci95_hi}`` in %, the rows being ``au_ttt`` (this run), the baselines' variants and the
  all-positive floor (``floor``, no interval);
* ``<out>/curves/<table>-<dataset>-<variant>.json``: per epoch with a test score, the mean over the row's
  folds and seeds of the test-part mean F1 (%) and the training loss — one DVC plot per row;
* ``<out>/figures/curves.png``: those curves in one figure.
"""

from __future__ import annotations

import io
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from au_ttt.fileio import atomic_write_text
from au_ttt.tables.baselines import BaselineRow
from au_ttt.tables.collect import CrossResult, FoldGroup
from au_ttt.tables.intervals import Interval
from au_ttt.tables.uncertainty import Uncertainty, row_key

__all__ = ["row_curve", "table_metrics", "write_curves", "write_metrics"]


def _cell(value: float, iv: Interval | None) -> dict[str, float]:
    out = {"f1": round(value, 4)}
    if iv is not None:
        out.update(ci95_lo=round(iv.lo, 4), ci95_hi=round(iv.hi, 4))
    return out


def table_metrics(within: Mapping[str, FoldGroup], cross: Mapping[tuple[str, str], CrossResult],
                  ablation: Mapping[str, FoldGroup], baselines: Sequence[BaselineRow], unc: Uncertainty
                  ) -> dict[str, Any]:
    """Every table cell's mean F1 (%) with its interval, nested table → dataset/direction → row."""
    t1: dict[str, Any] = {}
    for d, g in within.items():
        t1[d] = {"au_ttt": _cell(g.mean_std[0], unc.row(g)), "floor": {"f1": round(g.floor, 4)}}
        for b in baselines:
            if d in b.within:
                bg = b.within[d]
                t1[d][b.variant] = _cell(bg.mean_std[0], unc.row(bg) if row_key(bg) in unc.rows else None)
    t2: dict[str, Any] = {}
    for (s, t), r in cross.items():
        key = f"{s}_to_{t}"
        t2[key] = {"au_ttt": _cell(100 * r.f1_mean, unc.cross_cell((s, t))), "floor": {"f1": round(100 * r.floor, 4)}}
        for b in baselines:
            if (s, t) in b.cross:
                br = b.cross[(s, t)]
                t2[key][b.variant] = _cell(100 * br.f1_mean, unc.cross_of(br) if br.paths in unc.cross_rows else None)
    t3 = {v: _cell(g.mean_std[0], unc.row(g)) for v, g in ablation.items()}
    return {"table1": t1, "table2": t2, "table3": t3}


def write_metrics(path: str | Path, metrics: Mapping[str, Any]) -> Path:
    return atomic_write_text(path, json.dumps(metrics, indent=2, sort_keys=False) + "\n")


def row_curve(g: FoldGroup) -> list[dict[str, float]]:
    """Epochs scored in every run of the row: mean test F1 (%) and mean training loss over folds and seeds."""
    histories = []
    for r in g.runs:
        path = r.path / "history.json"
        if not path.is_file():
            return []  # a probe, or a run from before histories were kept: no curve
        histories.append({h["epoch"]: h for h in json.loads(path.read_text()) if "test_f1" in h})
    epochs = sorted(set.intersection(*(set(h) for h in histories))) if histories else []
    return [{"epoch": e, "test_f1": round(100 * statistics.fmean(h[e]["test_f1"] for h in histories), 4),
             "train_loss": round(statistics.fmean(h[e]["train_total"] for h in histories), 6)} for e in epochs]


def write_curves(rows: Mapping[str, FoldGroup], out: str | Path) -> list[Path]:
    """``curves/<name>.json`` per row with a curve, and ``figures/curves.png`` of all of them."""
    out = Path(out)
    curves = {name: c for name, g in rows.items() if (c := row_curve(g))}
    files = [atomic_write_text(out / "curves" / f"{name}.json", json.dumps(c, indent=1) + "\n")
             for name, c in curves.items()]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for name, c in curves.items():
        ax.plot([p["epoch"] for p in c], [p["test_f1"] for p in c], marker="o", markersize=3, label=name)
    ax.set(xlabel="epoch", ylabel="test-part mean F1 (%), mean over folds and seeds",
           title="Training curves of every table row (the last epoch is the reported number)")
    if curves:
        ax.legend(fontsize=6.5, ncol=2, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    files.append(atomic_write_text(out / "figures" / "curves.png", buf.getvalue()))
    return files
