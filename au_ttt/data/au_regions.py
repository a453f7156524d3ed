"""Where each AU lives on the face: FG-Net's landmark-anchored centres (two per AU, 68-point iBUG scheme).

Source: ihp-lab/FG-Net ``code/data_utils.py`` ``au2heatmap``. Landmarks are 0-based
(x, y) pixel coordinates, y pointing down. IOD = ‖p42 − p39‖, the inner-eye-corner distance.

These centres are shared by the heatmap targets, the label-free RoI masks of AU RoI TTT and the SynthAU
renderer, so that an AU is drawn exactly where the model is told to look.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AU_CENTRE_RULES", "LEFT_RIGHT_PAIRS_68", "MIRROR_68", "au_centres", "inter_ocular"]

# AU -> (two centre specs, downward shift in IOD units). A spec is a landmark index or a tuple of indices
# whose mean is taken. For bilateral AUs the first centre is on the image-left side.
_EYE_L, _EYE_R = tuple(range(36, 42)), tuple(range(42, 48))
_BROW_L, _BROW_R = tuple(range(17, 22)), tuple(range(22, 27))
AU_CENTRE_RULES: dict[int, tuple[tuple[int | tuple[int, ...], int | tuple[int, ...]], float]] = {
    1: ((21, 22), 0.0),            # inner brow raiser: inner brow ends
    2: ((17, 26), 0.0),            # outer brow raiser: outer brow ends
    4: ((_BROW_L, _BROW_R), 0.0),  # brow lowerer: brow centres
    6: ((_EYE_L, _EYE_R), 1.0),    # cheek raiser: eye centres, 1 IOD down
    7: ((38, 43), 0.0),            # lid tightener: upper lids
    9: ((39, 42), 0.0),            # nose wrinkler (DISFA): inner eye corners
    10: ((50, 52), 0.0),           # upper lip raiser: upper lip
    12: ((48, 54), 0.0),           # lip corner puller: mouth corners
    14: ((48, 54), 0.0),           # dimpler: mouth corners
    15: ((48, 54), 0.0),           # lip corner depressor: mouth corners
    17: ((56, 58), 0.5),           # chin raiser: lower lip, 0.5 IOD down
    23: ((51, 57), 0.0),           # lip tightener: lip centres
    24: ((51, 57), 0.0),           # lip pressor: lip centres
    25: ((51, 57), 0.0),           # lips part (DISFA)
    26: ((56, 58), 0.0),           # jaw drop (DISFA): no offset in FG-Net's code
}

# Horizontal mirror of the 68-point iBUG scheme: MIRROR_68[i] is the index that point i becomes after a
# left-right flip (jaw 0↔16, brows 17↔26, eyes 36↔45, nose wings, mouth 48↔54, …).
_PAIRS = (
    [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)] + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
)
LEFT_RIGHT_PAIRS_68: tuple[tuple[int, int], ...] = tuple(_PAIRS)
MIRROR_68 = np.arange(68)
for _a, _b in _PAIRS:
    MIRROR_68[_a], MIRROR_68[_b] = _b, _a


def inter_ocular(points: np.ndarray) -> float:
    """IOD as FG-Net defines it: distance between the inner eye corners 39 and 42."""
    return float(np.linalg.norm(points[42] - points[39]))


def _spec_point(points: np.ndarray, spec: int | tuple[int, ...]) -> np.ndarray:
    return points[list(spec)].mean(0) if isinstance(spec, tuple) else points[spec]


def au_centres(points: np.ndarray, aus: tuple[int, ...] | list[int]) -> np.ndarray:
    """Two (x, y) centres per AU from 68 landmarks: array (len(aus), 2, 2), in the rule's point order.

For the bilateral AUs the first centre is on the image-left; AU17/AU26 use (56, 58) in iBUG order and
AU23/24/25 a vertical pair (upper, lower lip), so callers must not assume a side for those.

    Raises ``KeyError`` for an AU without a rule (the message lists the supported AUs).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68×2 landmarks, got {points.shape}")
    iod = inter_ocular(points)
    out = np.empty((len(aus), 2, 2))
    for i, au in enumerate(aus):
        if au not in AU_CENTRE_RULES:
            raise KeyError(f"no centre rule for AU{au}; supported: {sorted(AU_CENTRE_RULES)}")
        (left, right), shift = AU_CENTRE_RULES[au]
        out[i, 0] = _spec_point(points, left)
        out[i, 1] = _spec_point(points, right)
        out[i, :, 1] += shift * iod
    return out
