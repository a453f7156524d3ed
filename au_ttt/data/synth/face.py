"""A parametric face: identity, 68 iBUG landmarks in a canonical frame, AU landmark motion and head pose.

Canonical frame: x right (image side), y down, unit = half the face width at the cheekbones; every point also
has a depth z (nose tip forward) so that a small yaw/pitch moves the nose more than the jaw, as on a real
head. AUs move the landmarks the way the muscle moves the skin (FACS: AU1 lifts the inner brow, AU12 pulls
the lip corners up and out, AU26 drops the jaw, …), so the projected points stay ground truth for the drawn
face. Magnitudes are per unit intensity (0–5) and were chosen by eye to be visible at the demo resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALL_AUS", "MOTION_GAIN", "Identity", "Pose", "apply_aus", "depth68", "neutral_landmarks", "project",
    "sample_identity",
]

# Every AU the generator animates: union of the BP4D and DISFA label sets (ME-GraphAU tool/*_image_label_process.py).
ALL_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
# Global scale of the AU motions below; tuned (docs/synthau.md) so that a HOG + logistic-regression baseline
# beats all-positive clearly but stays far from perfect on the demo-sized dataset.
MOTION_GAIN = 1.6


@dataclass(frozen=True)
class Identity:
    """Shape and colour parameters of one synthetic subject (colours are BGR floats in 0–255)."""

    face_len: float      # chin y
    jaw_square: float    # exponent of the jaw curve: < 1 squarer, > 1 more pointed
    eye_y: float
    eye_dx: float        # eye centre distance from the midline
    eye_w: float         # eye half-width
    eye_h: float         # eye half-opening
    brow_gap: float      # brow height above the eye centre
    brow_arch: float
    brow_thick: float
    nose_y: float        # nose bottom
    nose_w: float
    mouth_y: float
    mouth_w: float       # mouth half-width
    lip_up: float        # upper lip thickness
    lip_low: float       # lower lip thickness
    folds: float         # how visible skin folds/wrinkles are (age, skin): scales every AU's shading
    glasses: bool        # spectacle frames around the eyes (DISFA-style subjects only)
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: int      # 0 short, 1 long, 2 cropped
    iris: tuple[float, float, float]
    lip: tuple[float, float, float]
    cloth: tuple[float, float, float]
    bg: tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class Pose:
    """Head pose and framing in pixels: canonical point → image point."""

    scale: float   # pixels per canonical unit
    roll: float    # radians
    yaw: float     # radians (approximate, via depth)
    pitch: float   # radians (approximate, via depth)
    cx: float
    cy: float


# Skin tone palettes (BGR). BP4D-style draws from the full range; DISFA-style from a shifted mixture, one
# half of the documented identity shift between the two domains (docs/synthau.md).
_SKINS = np.array([[196, 214, 242], [160, 190, 230], [130, 170, 215], [100, 140, 190], [70, 105, 150],
                   [50, 75, 110]], dtype=np.float64)
_SKIN_WEIGHTS = {"bp4d": (0.15, 0.25, 0.2, 0.2, 0.12, 0.08), "disfa": (0.35, 0.35, 0.15, 0.08, 0.05, 0.02)}
_HAIRS = np.array([[20, 20, 25], [30, 45, 70], [40, 70, 110], [90, 140, 190], [150, 150, 155]], dtype=np.float64)


def sample_identity(rng: np.random.Generator, domain: str) -> Identity:
    """Draw a subject; ``domain`` ('bp4d'|'disfa') shifts skin tones, face proportions (DISFA rounder) and
    fold visibility (DISFA fainter wrinkles, as younger skin shows); half the DISFA subjects wear glasses."""
    rounder = domain == "disfa"
    u = rng.uniform
    skin = _SKINS[rng.choice(len(_SKINS), p=_SKIN_WEIGHTS[domain])] * u(0.92, 1.06, 3)
    hair = _HAIRS[rng.integers(len(_HAIRS))] * u(0.85, 1.15, 3)
    lip = skin * np.array([0.75, 0.7, 1.0]) * u(0.85, 1.0)
    bg1 = u(40, 220, 3)
    return Identity(
        face_len=u(1.12, 1.3) if rounder else u(1.25, 1.45),
        jaw_square=u(0.55, 0.8) if rounder else u(0.7, 1.1),
        eye_y=u(-0.12, -0.04), eye_dx=u(0.36, 0.44), eye_w=u(0.15, 0.19), eye_h=u(0.06, 0.085),
        brow_gap=u(0.2, 0.27), brow_arch=u(0.03, 0.08), brow_thick=u(0.035, 0.06),
        nose_y=u(0.38, 0.5), nose_w=u(0.12, 0.18),
        mouth_y=u(0.74, 0.86), mouth_w=u(0.27, 0.36), lip_up=u(0.045, 0.07), lip_low=u(0.06, 0.09),
        folds=u(0.25, 0.65) if domain == "disfa" else u(0.7, 1.2),
        skin=tuple(np.clip(skin, 0, 255)), hair=tuple(np.clip(hair, 0, 255)),
        glasses=bool(rng.random() < 0.5) if domain == "disfa" else False,
        hair_style=int(rng.integers(3)), iris=tuple(u(20, 140, 3)), lip=tuple(np.clip(lip, 0, 255)),
        cloth=tuple(u(20, 230, 3)), bg=(tuple(bg1), tuple(np.clip(bg1 + u(-60, 60, 3), 0, 255))),
    )


def neutral_landmarks(idt: Identity) -> np.ndarray:
    """(68, 2) canonical landmarks of the neutral face, iBUG order (0 = jaw on the image-left)."""
    p = np.zeros((68, 2))
    a = np.linspace(np.pi, 0.0, 17)                                     # jaw 0..16
    c, s = np.cos(a), np.sin(a)
    top = idt.eye_y + 0.05
    p[:17, 0] = np.sign(c) * np.abs(c) ** idt.jaw_square * 0.98
    p[:17, 1] = top + (idt.face_len - top) * s ** 1.2
    brow_y = idt.eye_y - idt.brow_gap
    u = np.linspace(0.0, 1.0, 5)
    for k, side in ((17, -1), (22, 1)):                                  # brows, listed left → right
        xs = -(idt.eye_dx + 0.22) + 0.42 * u if side < 0 else idt.eye_dx - 0.2 + 0.42 * u
        p[k:k + 5, 0] = xs
        arch = idt.brow_arch * np.sin(np.pi * np.clip((np.abs(xs) - 0.1) / 0.55, 0, 1))
        p[k:k + 5, 1] = brow_y - arch
    p[27:31, 0] = 0.0                                                   # nose bridge
    p[27:31, 1] = np.linspace(idt.eye_y, idt.nose_y - 0.08, 4)
    p[31:36, 0] = np.linspace(-idt.nose_w, idt.nose_w, 5)               # nostril base
    p[31:36, 1] = idt.nose_y + np.array([-0.02, 0.0, 0.02, 0.0, -0.02])
    for k, side in ((36, -1), (42, 1)):     # eyes; ring starts at the image-left corner (36 outer, 42 inner)
        cx, w, h = side * idt.eye_dx, idt.eye_w, idt.eye_h
        ring = np.array([[-w, 0], [-w / 3, -h], [w / 3, -h], [w, 0], [w / 3, 0.8 * h], [-w / 3, 0.8 * h]])
        p[k:k + 6] = ring + np.array([cx, idt.eye_y])
    w, y0, lu, ll = idt.mouth_w, idt.mouth_y, idt.lip_up, idt.lip_low
    p[48:60] = [[-w, y0], [-0.6 * w, y0 - 0.8 * lu], [-0.25 * w, y0 - lu], [0, y0 - 0.85 * lu],
                [0.25 * w, y0 - lu], [0.6 * w, y0 - 0.8 * lu], [w, y0], [0.6 * w, y0 + 0.8 * ll],
                [0.25 * w, y0 + ll], [0, y0 + ll], [-0.25 * w, y0 + ll], [-0.6 * w, y0 + 0.8 * ll]]
    p[60:68] = [[-0.85 * w, y0], [-0.35 * w, y0 - 0.01], [0, y0 - 0.01], [0.35 * w, y0 - 0.01],
                [0.85 * w, y0], [0.35 * w, y0 + 0.01], [0, y0 + 0.01], [-0.35 * w, y0 + 0.01]]
    return p


def depth68() -> np.ndarray:
    """Depth (forward = positive) of each landmark, a rough head shape used for the yaw/pitch approximation."""
    z = np.full(68, 0.25)
    z[:17] = -0.35 + 0.45 * np.sin(np.linspace(0, np.pi, 17))
    z[17:27], z[27:31] = 0.2, [0.3, 0.4, 0.5, 0.6]
    z[31:36], z[36:48], z[48:68] = 0.4, 0.15, 0.3
    return z


def _lr(p: np.ndarray, idx: list[int], dx: np.ndarray | float, dy: np.ndarray | float) -> None:
    """Move points on the image-left side by (dx, dy) and their mirror points by (−dx, dy)."""
    mirror = {17: 26, 18: 25, 19: 24, 20: 23, 21: 22, 36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46,
              48: 54, 49: 53, 50: 52, 59: 55, 58: 56, 60: 64, 61: 63, 67: 65, 31: 35, 32: 34}
    dx, dy = np.broadcast_to(dx, len(idx)), np.broadcast_to(dy, len(idx))
    for i, a, b in zip(idx, dx, dy, strict=True):
        p[i] += (a, b)
        if i in mirror:
            p[mirror[i]] += (-a, b)


def apply_aus(neutral: np.ndarray, intensity: dict[int, float]) -> np.ndarray:
    """Landmarks after the AU motions; ``intensity`` maps AU → 0–5 (missing AUs are 0)."""
    p = neutral.copy()
    g = {au: MOTION_GAIN * float(intensity.get(au, 0.0)) / 5.0 for au in ALL_AUS}
    brow = [17, 18, 19, 20, 21]
    _lr(p, brow, 0.0, -0.09 * g[1] * np.array([0.0, 0.2, 0.5, 0.8, 1.0]))          # AU1 inner brow up
    _lr(p, brow, 0.0, -0.09 * g[2] * np.array([1.0, 0.85, 0.55, 0.25, 0.05]))      # AU2 outer brow up
    _lr(p, brow, 0.06 * g[4] * np.array([0.2, 0.4, 0.6, 0.8, 1.0]), 0.1 * g[4])   # AU4 brows down and in
    _lr(p, [37, 38], 0.0, -0.03 * g[5] + 0.015 * g[4] + 0.02 * g[7])               # AU5 lids up / AU4,7 down
    _lr(p, [40, 41], 0.0, -0.025 * g[6] - 0.035 * g[7])                            # AU6/AU7 lower lid up
    _lr(p, [31, 32], 0.01 * g[9], -0.045 * g[9] - 0.02 * g[10])                    # AU9 nose wings up
    p[33, 1] -= 0.035 * g[9] + 0.015 * g[10]
    _lr(p, brow[3:], 0.0, 0.03 * g[9])                                             # AU9 pulls inner brow down
    up = -0.06 * g[10] - 0.02 * g[9]                                               # AU10 upper lip up
    _lr(p, [49, 50, 61], 0.0, up)
    p[[51, 62], 1] += up
    corner_dx = -0.06 * g[12] - 0.06 * g[20] + 0.03 * g[14] + 0.05 * g[23]
    corner_dy = -0.07 * g[12] + 0.09 * g[15] - 0.01 * g[14] + 0.02 * g[20]
    _lr(p, [48, 60], corner_dx, corner_dy)                                         # AU12/15/14/20/23 corners
    _lr(p, [49, 59, 61, 67], 0.5 * corner_dx, 0.5 * corner_dy)
    thin = 0.04 * g[23] + 0.06 * g[24]                                            # AU23/24 lips thinner
    _lr(p, [49, 50], 0.0, thin * 0.8)
    p[51, 1] += thin
    _lr(p, [58, 59], 0.0, -thin * 0.8)
    p[57, 1] -= thin
    chin = -0.05 * g[17]                                                           # AU17 chin and lower lip up
    _lr(p, [58, 59, 67], 0.0, chin)
    p[[57, 66], 1] += chin
    p[6:11, 1] += chin * 0.6
    part = 0.06 * g[25] + 0.05 * g[26]                                             # AU25 lips part
    jaw = 0.16 * g[26]                                                             # AU26 jaw drop
    lower = part + jaw
    _lr(p, [58, 59, 67], 0.0, lower)
    p[[57, 66], 1] += lower
    _lr(p, [61], 0.0, -0.2 * part)
    p[62, 1] -= 0.2 * part
    w = np.sin(np.linspace(0, np.pi, 17)) ** 2                                     # jaw moves most at the chin
    p[:17, 1] += jaw * w
    return p


def project(points: np.ndarray, depth: np.ndarray, pose: Pose) -> np.ndarray:
    """Canonical (n, 2) + depth (n,) → image (n, 2): pseudo-3D yaw/pitch, roll, scale, translation."""
    x = points[:, 0] * np.cos(pose.yaw) + depth * np.sin(pose.yaw)
    y = points[:, 1] * np.cos(pose.pitch) - depth * np.sin(pose.pitch)
    c, s = np.cos(pose.roll), np.sin(pose.roll)
    return np.stack([pose.cx + pose.scale * (c * x - s * y), pose.cy + pose.scale * (s * x + c * y)], axis=1)
