"""AU intensity trajectories with real-data occurrence rates and co-occurrence, and smooth head-pose tracks.

Model: an AU is "on" during episodes, random segments whose count is solved from the target rate. Episodes
come from two sources: the AU's own process, and the episodes of an expression *group* the AU belongs to
(smile: 6, 7, 10, 12, 14; surprise: 1, 2, 5; frown: 4, 7, 9; press: 15, 17, 23, 24; mouth: 25, 26), which
makes AU6 co-occur with AU12 and AU1 with AU2 as in the real data. The own-process rate is solved so that
the union hits the target rate. Inside an episode the intensity rises smoothly to an apex and falls back;
just before and after it the face passes through sub-threshold onset/offset values, and random weak
"trace" movements add hard negatives.

"On" means intensity ≥ ``ON_THRESHOLD[dataset]``: 2 for DISFA (its occurrence rule in ME-GraphAU
tool/DISFA_image_label_process.py) and 1
for BP4D, whose occurrence codes count any visible action including trace (FACS "A") level. This label
convention is one part of the documented domain shift: weak actions are positive in BP4D-style data and
negative in DISFA-style data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from au_ttt.data.synth.face import ALL_AUS

__all__ = ["GROUPS", "ON_THRESHOLD", "TARGET_RATES", "PoseTrack", "au_trajectories", "pose_track"]

ON_THRESHOLD: dict[str, float] = {"bp4d": 1.0, "disfa": 2.0}   # intensity ≥ threshold ⇔ occurrence
_TRACE_RATE = {"bp4d": 0.05, "disfa": 0.20}   # share of frames with weak sub-threshold motion (DISFA: coded 1)

# Target occurrence rates (fraction of frames). Evaluated AUs: the fold-1 training rates of the full label lists
# (CVI-SZU/MDHR data/*_dataset/*_train_label_fold1.txt).
# DISFA's real rates are raised to a floor of 0.10 so each AU has positives in a demo-sized test part
# (a documented deviation). AUs a dataset does not evaluate get small rates chosen by us.
_DISFA_FLOOR = 0.10
TARGET_RATES: dict[str, dict[int, float]] = {
    "bp4d": {1: 0.184, 2: 0.146, 4: 0.198, 6: 0.440, 7: 0.570, 10: 0.567, 12: 0.540, 14: 0.457, 15: 0.175,
             17: 0.342, 23: 0.165, 24: 0.148, 5: 0.05, 9: 0.05, 20: 0.05, 25: 0.30, 26: 0.10},
    "disfa": {1: max(0.038, _DISFA_FLOOR), 2: max(0.023, _DISFA_FLOOR), 4: 0.135, 6: max(0.068, _DISFA_FLOOR),
              9: max(0.029, _DISFA_FLOOR), 12: 0.123, 25: 0.276, 26: 0.103,
              5: 0.03, 15: 0.05, 17: 0.08, 20: 0.03, 7: 0.10, 10: 0.08, 14: 0.05, 23: 0.04, 24: 0.04},
}
# Expression groups: name → (members, group episode rate per dataset).
GROUPS: dict[str, tuple[tuple[int, ...], dict[str, float]]] = {
    "smile": ((6, 7, 10, 12, 14), {"bp4d": 0.36, "disfa": 0.07}),
    "surprise": ((1, 2, 5), {"bp4d": 0.12, "disfa": 0.06}),
    "frown": ((4, 7, 9), {"bp4d": 0.12, "disfa": 0.07}),
    "press": ((15, 17, 23, 24), {"bp4d": 0.11, "disfa": 0.03}),
    "mouth": ((25, 26), {"bp4d": 0.08, "disfa": 0.08}),
}
MEAN_EPISODE = 8.0   # frames; a demo frame stands for several real frames, so episodes are short


def _episodes(rng: np.random.Generator, n: int, rate: float, mean_len: float) -> list[tuple[int, int]]:
    """[start, end) runs that cover a fraction ≈ ``rate`` of n frames (a Boolean model of random segments).

    k segments of mean length L at uniform positions cover a frame with probability 1 − exp(−kL/(n+L−1)),
    so k is solved from the rate and rounded stochastically: fewer surprises than a Markov chain in the
    short sequences of a demo.
    """
    if rate <= 0:
        return []
    lam = -np.log(1.0 - min(rate, 0.95)) * (n + mean_len - 1) / mean_len
    k = int(lam) + int(rng.random() < lam - int(lam))
    runs = []
    for _ in range(k):
        length = max(1, round(rng.uniform(0.5, 1.5) * mean_len))
        start = int(rng.integers(-length + 1, n))
        runs.append((max(start, 0), min(start + length, n)))
    return runs


def _paint(track: np.ndarray, runs: list[tuple[int, int]], rng: np.random.Generator, thr: float) -> None:
    """Raise ``track`` to a smooth onset–apex–offset bump ≥ ``thr`` on each run (max with what is there)."""
    n = len(track)
    for s, e in runs:
        apex = rng.uniform(thr + 0.2, 4.5)
        phase = (np.arange(s, e) - s + 0.5) / (e - s)
        bump = thr + (apex - thr) * np.sin(np.pi * phase) ** 0.7
        track[s:e] = np.maximum(track[s:e], bump)
        for k, val in ((1, thr - 0.7), (2, thr - 1.4)):     # sub-threshold onset/offset frames
            for t in (s - k, e - 1 + k):
                if 0 <= t < n and track[t] < val:
                    track[t] = val


def au_trajectories(rng: np.random.Generator, n_frames: int, dataset: str) -> np.ndarray:
    """(n_frames, len(ALL_AUS)) intensities 0–5: on-frames ≥ ON_THRESHOLD[dataset], others ≤ threshold − 0.55.

    The margin keeps DISFA's integer labels exact: off-frames (≤ 1.45) round to ≤ 1, on-frames to ≥ 2.
    """
    rates, thr = TARGET_RATES[dataset], ON_THRESHOLD[dataset]
    off_cap = thr - 0.55
    on = np.zeros((n_frames, len(ALL_AUS)), dtype=bool)
    grp_runs = {name: _episodes(rng, n_frames, g[dataset], MEAN_EPISODE) for name, (_, g) in GROUPS.items()}
    out = np.zeros((n_frames, len(ALL_AUS)))
    for j, au in enumerate(ALL_AUS):
        runs: list[tuple[int, int]] = []
        covered = 0.0                                       # P(on) contributed by groups
        for name, (members, g) in GROUPS.items():
            if au in members:
                q = min(1.0, 0.85 * rates[au] / g[dataset])  # share of group episodes this AU joins
                runs += [r for r in grp_runs[name] if rng.random() < q]
                covered = 1 - (1 - covered) * (1 - g[dataset] * q)
        own = max(0.0, 1 - (1 - rates[au]) / (1 - covered))
        runs += _episodes(rng, n_frames, own, MEAN_EPISODE)
        for s, e in _episodes(rng, n_frames, _TRACE_RATE[dataset], 3.0):   # weak movements: hard negatives
            out[s:e, j] = np.maximum(out[s:e, j], rng.uniform(0.6 * off_cap, off_cap))
        _paint(out[:, j], runs, rng, thr)
        for s, e in runs:
            on[s:e, j] = True
    out[~on] = np.clip(out[~on], 0.0, off_cap)              # keep negatives strictly below threshold
    return out


@dataclass(frozen=True)
class PoseTrack:
    """Per-frame head pose offsets (radians, fraction of the face scale, pixels)."""

    roll: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    scale: np.ndarray
    dx: np.ndarray
    dy: np.ndarray


def _smooth_noise(rng: np.random.Generator, n: int, amp: float) -> np.ndarray:
    """A sum of three random slow sinusoids, peak amplitude ≈ ``amp``."""
    t = np.arange(n)
    out = np.zeros(n)
    for _ in range(3):
        out += np.sin(2 * np.pi * t / rng.uniform(15, 60) + rng.uniform(0, 2 * np.pi))
    return amp * out / 3.0 + rng.uniform(-amp, amp) * 0.5


def pose_track(rng: np.random.Generator, n_frames: int, rot_deg: float, shift_px: float,
               scale_jitter: float) -> PoseTrack:
    """Smooth head motion: rotations up to ~``rot_deg``, shifts ~``shift_px``, relative scale ±``scale_jitter``."""
    rad = np.deg2rad(rot_deg)
    return PoseTrack(roll=_smooth_noise(rng, n_frames, rad), yaw=_smooth_noise(rng, n_frames, 1.5 * rad),
                     pitch=_smooth_noise(rng, n_frames, rad), scale=1 + _smooth_noise(rng, n_frames, scale_jitter),
                     dx=_smooth_noise(rng, n_frames, shift_px), dy=_smooth_noise(rng, n_frames, shift_px))
