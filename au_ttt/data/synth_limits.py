"""The allowed SynthAU sizes: one table that `au-ttt synth`, `au-ttt plan` and the Snakemake DAG all check.

Absurd sizes used to end in a traceback (numpy refusing a negative seed, a 1.5 TiB label array, a
``first_subjects`` ValueError at DAG parse time). Every bound comes from the published datasets SynthAU imitates
(:mod:`au_ttt.data.protocol`), so the largest SynthAU is the size of the real data, not more. Light module: the
DAG imports it at parse time, and ``au_ttt.data.synth`` would import OpenCV.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from au_ttt.config import ConfigError
from au_ttt.data.protocol import BP4D_AUS, BP4D_TASKS, DISFA_FRAMES_PER_VIDEO, MAX_SUBJECTS_PER_PART

__all__ = ["SYNTHAU_LIMITS", "check_synthau_sizes", "synthau_size_problem"]

# name → (least, most, why the most): keys as in `workflow.synthau` and generate_synthau's arguments.
SYNTHAU_LIMITS: dict[str, tuple[int, int, str]] = {
    "seed": (0, 2**32 - 1, "a non-negative 32-bit seed"),
    "subjects_per_part": (1, MAX_SUBJECTS_PER_PART,
                          f"{MAX_SUBJECTS_PER_PART} takes every published subject of both datasets"),
    "bp4d_tasks": (1, len(BP4D_TASKS), f"BP4D has tasks T1–T{len(BP4D_TASKS)}"),
    # BP4D's coded task segments average 448 frames (146,847 / 41 subjects / 8 tasks); DISFA's videos have 4,845
    "bp4d_frames": (2, DISFA_FRAMES_PER_VIDEO, f"no published sequence is longer than {DISFA_FRAMES_PER_VIDEO:,}"),
    "disfa_frames": (2, DISFA_FRAMES_PER_VIDEO, f"a DISFA video has {DISFA_FRAMES_PER_VIDEO:,} frames"),
    "unknown_standard": (0, DISFA_FRAMES_PER_VIDEO * len(BP4D_AUS),
                         "at most every (frame, evaluated AU) cell of the longest task"),
}


def synthau_size_problem(name: str, value: Any) -> str | None:
    """What is allowed for ``name`` when ``value`` is outside it (None when it is fine)."""
    low, high, why = SYNTHAU_LIMITS[name]
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return None
    return f"allowed: an integer in {low}..{high:,} ({why})"


def check_synthau_sizes(sizes: Mapping[str, Any], source: str, prefix: str = "workflow.synthau.") -> None:
    """Raise a :class:`ConfigError` naming ``source`` and the key of the first size out of its range."""
    for name, value in sizes.items():
        problem = synthau_size_problem(name, value) if name in SYNTHAU_LIMITS else None
        if problem:
            raise ConfigError(f"{source}: key '{prefix}{name}' has value {value!r}; {problem}")
