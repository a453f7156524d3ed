"""Same-protocol baseline rows of Tables I and II: other methods trained by this pipeline on the same folds.

Why a separate row kind: a published row was measured by someone else on other crops, splits and
thresholds, so it can only be quoted; a same-protocol row was trained here, on the same test subjects as
AU-TTT, so it gets intervals and paired comparisons. Each row is one variant (a timm ViT, a timm ResNet,
our attention control, the HOG + logistic-regression probe) with its folds per dataset and, when it was
evaluated cross-domain, its Table II directions; its label says what it is, from the run's own record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from au_ttt.errors import InputError
from au_ttt.tables.collect import PARTS, CrossResult, FoldGroup, RunResult, _folds, group_cross

__all__ = ["BaselineRow", "baseline_label", "group_baselines"]

PROBE_LABEL = "HOG + logistic regression (probe)"


def baseline_label(variant: str | None, run_dir: Path) -> str:
    """What a baseline row is, from its run's ``run.json`` (model section) or ``probe.json``."""
    if (run_dir / "probe.json").is_file():
        return PROBE_LABEL
    try:
        model = json.loads((run_dir / "run.json").read_text()).get("model") or {}
    except (OSError, ValueError):
        return str(variant)
    arch = model.get("arch", "au_ttt")
    if arch == "vit":
        return (f"ViT, plain fine-tune (timm VisionTransformer {model.get('img_size')} px, patch "
                f"{model.get('patch_size')}, width {model.get('embed_dim')}, depth {model.get('depth')}; CLS → AU "
                "logits)")
    if arch == "resnet":
        widths = model.get("widths")
        narrow = f", stage widths {'/'.join(map(str, widths))}" if widths else ""
        return f"ResNet (timm {model.get('timm_model')}{narrow}; pooled features → AU logits)"
    if model.get("mixer") == "attention":
        return "AU-TTT with attention instead of TTT (our control)"
    return str(variant)


@dataclass
class BaselineRow:
    """One baseline method: its folds per dataset (Table I) and its evaluations per direction (Table II)."""

    variant: str
    label: str
    within: dict[str, FoldGroup]
    cross: dict[tuple[str, str], CrossResult] = field(default_factory=dict)


def group_baselines(runs: Sequence[RunResult], cross: Sequence[CrossResult],
                    parts: Sequence[int] = PARTS) -> list[BaselineRow]:
    """Rows in the order their variants first appear; every (dataset, variant) needs the folds ``parts``."""
    order = list(dict.fromkeys(str(r.variant) for r in runs))
    rows = []
    for v in order:
        mine = [r for r in runs if str(r.variant) == v]
        datasets = sorted({r.dataset for r in mine})
        within = {d: _folds([r for r in mine if r.dataset == d], d, v, "--baselines", parts) for d in datasets}
        results = [c for c in cross if str(c.variant) == v]
        directions = group_cross(results, "--baselines-cross") if results else {}
        rows.append(BaselineRow(v, baseline_label(v, mine[0].path), within, directions))
    stray = sorted({str(c.variant) for c in cross} - set(order))
    if stray:
        raise InputError(f"--baselines-cross: evaluations of {stray} have no within-domain runs in --baselines; "
                         "pass the run directories they were made from")
    return rows
