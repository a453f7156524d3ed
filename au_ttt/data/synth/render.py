"""Draw one frame: background, head, hair, features and the local AU appearance, then the camera of a domain.

Everything is drawn with cv2 primitives on a float canvas. Wrinkles, furrows and bulges are drawn in the
canonical face frame *relative to landmarks* and projected with the same pose, so each AU changes the image
exactly where its FG-Net centre (``au_ttt.data.au_regions.au_centres``) lies: AU1/2 forehead lines above the
inner/outer brows, AU4 vertical furrows between the brows, AU6 cheek bulge and crow's feet under/beside the
eyes, AU9 creases on the nose bridge, AU10/12 nasolabial folds, AU14 dimples, AU15 marionette lines, AU17
chin "orange peel", AU23/24 lip thinning and pressure bulges, AU25/26 the open mouth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from au_ttt.data.synth.face import Identity, Pose, depth68, project

__all__ = ["DOMAINS", "DomainStyle", "background", "camera", "draw_face"]


@dataclass(frozen=True)
class DomainStyle:
    """The camera and lighting of one synthetic dataset (the documented domain shift, docs/synthau.md)."""

    width: int
    height: int
    face_frac: float        # face width / image width
    face_y: float           # face centre height / image height
    rot_deg: float          # head rotation amplitude
    yaw_deg: float          # mean yaw: the camera's viewpoint (DISFA's left camera sees the face from a side)
    pitch_deg: float        # mean pitch: camera above (−) or below (+) the eyes
    shift_frac: float       # head shift amplitude / image width
    light_side: float       # 0 = even light, 1 = one side fully dark
    gain: float             # overall brightness
    blur_sigma: float       # optics blur in pixels
    noise_sigma: float      # sensor noise (0–255 scale)
    jpeg_quality: int       # BP4D frames only; DISFA frames are compressed by the AVI codec


# BP4D: real frames are 1040×1392 portrait (e.g. PyTorch-JAANet dataset/BP4D/F001/T1/2440.jpg); we write 240×320
# (≈ 1/4.35, same aspect).
# DISFA: real frames are 1024×768 (§2.2); we write 256×192 (1/4) with a smaller, darker, side-lit face.
DOMAINS: dict[str, DomainStyle] = {
    "bp4d": DomainStyle(width=240, height=320, face_frac=0.42, face_y=0.45, rot_deg=5.0, yaw_deg=0.0, pitch_deg=0.0,
                        shift_frac=0.03,
                        light_side=0.15, gain=1.05, blur_sigma=0.0, noise_sigma=2.0, jpeg_quality=90),
    "disfa": DomainStyle(width=256, height=192, face_frac=0.36, face_y=0.5, rot_deg=8.0, yaw_deg=25.0, pitch_deg=-8.0,
                         shift_frac=0.04,
                         light_side=0.45, gain=0.8, blur_sigma=0.7, noise_sigma=4.0, jpeg_quality=0),
}
_Z68 = depth68()
WRINKLE_DARKNESS = 0.7   # fraction of skin brightness a full-intensity fold removes (tuned with MOTION_GAIN)


def background(rng: np.random.Generator, idt: Identity, style: DomainStyle) -> np.ndarray:
    """A static per-sequence backdrop: a colour gradient plus a few soft blobs (float32 BGR)."""
    h, w = style.height, style.width
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = (1 - t) * np.float32(idt.bg[0]) + t * np.float32(idt.bg[1])
    img = np.broadcast_to(img, (h, w, 3)).copy()
    for _ in range(4):
        c = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.circle(img, c, int(rng.integers(w // 8, w // 3)), tuple(float(v) for v in rng.uniform(30, 230, 3)), -1)
    return cv2.GaussianBlur(img, (0, 0), w / 12)


def _poly(img: np.ndarray, pts: np.ndarray, color, closed: bool = True, thick: int = -1) -> None:
    p = np.round(pts * 16).astype(np.int32)[None]
    color = tuple(float(c) for c in np.broadcast_to(color, 3))
    if thick < 0:
        cv2.fillPoly(img, p, color, cv2.LINE_AA, shift=4)
    else:
        cv2.polylines(img, p, closed, color, thick, cv2.LINE_AA, shift=4)


def _v(x: float, y: float) -> np.ndarray:
    """A 2-D offset vector (keeps ``point + offset`` arithmetic in numpy)."""
    return np.array([x, y], dtype=np.float64)


def _curve(a: np.ndarray, b: np.ndarray, bend: float, n: int = 8) -> np.ndarray:
    """Points from a to b bowed sideways by ``bend`` (in canonical units)."""
    t = np.linspace(0, 1, n)[:, None]
    d = b - a
    normal = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9)
    return a + t * d + bend * np.sin(np.pi * t) * normal


def _wrinkles(c: np.ndarray, g: dict[int, float]) -> list[tuple[np.ndarray, float]]:
    """Dark strokes (canonical polylines, strength 0–1) for the AUs that fold the skin."""
    out: list[tuple[np.ndarray, float]] = []
    brow_top = c[17:27, 1].min() - 0.08
    for k in range(3):                                               # AU1 central / AU2 lateral forehead lines
        y = brow_top - 0.08 * k
        out.append((_curve(np.array([-0.28, y]), np.array([0.28, y]), 0.03), g[1]))
        for side in (-1, 1):
            out.append((_curve(np.array([side * 0.75, y + 0.02]), np.array([side * 0.35, y]), 0.02 * side), g[2]))
    for side in (-1, 1):
        x = side * 0.05                                              # AU4 vertical furrows between the brows
        out.append((_curve(np.array([x, c[21, 1] - 0.14]), np.array([x * 1.4, c[21, 1] + 0.08]), 0.01), g[4]))
        out.append((_curve(np.array([x * 2.5, c[21, 1] - 0.1]), np.array([x * 2.8, c[21, 1] + 0.04]), 0.01), g[4]))
        eye_out = c[36] if side < 0 else c[45]                       # AU6 crow's feet at the outer eye corners
        for dy in (-0.04, 0.0, 0.05):
            out.append((np.array([eye_out + _v(side * 0.04, dy), eye_out + _v(side * 0.14, dy * 2)]), g[6]))
        lid = (c[40] + c[41]) / 2 if side < 0 else (c[46] + c[47]) / 2   # AU6/AU7 lower-lid creases
        out.append((_curve(lid + _v(-0.08, 0.05), lid + _v(0.08, 0.05), 0.03), 0.6 * g[6] + 0.6 * g[7]))
        wing = c[31] if side < 0 else c[35]                          # AU10/AU12 nasolabial folds
        corner = c[48] if side < 0 else c[54]
        out.append((_curve(wing + _v(side * 0.05, -0.02), corner + _v(side * 0.07, 0.0), 0.06 * side),
                    max(g[10], 0.8 * g[12], 0.5 * g[9])))
        out.append((np.array([corner + _v(side * 0.05, 0.0), corner + _v(side * 0.06, 0.05)]), g[14]))  # AU14 dimple
        out.append((np.array([corner + _v(side * 0.02, 0.03), corner + _v(side * 0.07, 0.2)]), g[15]))  # AU15
    for k in range(3):                                               # AU9 creases across the nose bridge
        y = c[27, 1] + 0.03 * k
        out.append((_curve(np.array([-0.09, y]), np.array([0.09, y + 0.01]), 0.02), g[9]))
    out.append((_curve(c[59] + _v(0, 0.07), c[55] + _v(0, 0.07), -0.04), max(g[17], 0.7 * g[24])))   # AU17/AU24
    out.append((_curve(c[49] + _v(0, -0.04), c[53] + _v(0, -0.04), 0.02), 0.8 * g[24] + 0.4 * g[23]))
    for side in (-1, 1):                                             # AU23 tightened lip corners
        corner = c[48] if side < 0 else c[54]
        out.append((np.array([corner + _v(-side * 0.02, -0.04), corner + _v(-side * 0.02, 0.04)]), g[23]))
    return out


def draw_face(bg: np.ndarray, idt: Identity, canon: np.ndarray, g: dict[int, float], pose: Pose,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render the head over ``bg``; return the float image and the (68, 2) image landmarks."""
    img = bg.copy()
    pts = project(canon, _Z68, pose)

    def proj(xy: np.ndarray, z: float = 0.2) -> np.ndarray:
        xy = np.atleast_2d(xy)
        return project(xy, np.full(len(xy), z), pose)

    skin = np.array(idt.skin)
    a = np.linspace(0, np.pi, 24)
    neck = np.array([[-0.45, 0.9], [0.45, 0.9], [0.5, 2.0], [-0.5, 2.0]])
    _poly(img, proj([[-2.2, 3.5], [-1.6, 1.9], [1.6, 1.9], [2.2, 3.5]], -0.4), idt.cloth)
    _poly(img, proj(neck, -0.3), skin * 0.8)
    if idt.hair_style == 1:                                          # long hair behind the head
        _poly(img, proj([[-1.25, -0.6], [1.25, -0.6], [1.35, 1.9], [-1.35, 1.9]], -0.5), idt.hair)
    cv2.ellipse(img, tuple(int(v) for v in proj([-1.02, 0.15])[0]), (int(0.12 * pose.scale), int(0.25 * pose.scale)),
                0, 0, 360, tuple(float(v) for v in skin * 0.85), -1, cv2.LINE_AA)
    cv2.ellipse(img, tuple(int(v) for v in proj([1.02, 0.15])[0]), (int(0.12 * pose.scale), int(0.25 * pose.scale)),
                0, 0, 360, tuple(float(v) for v in skin * 0.85), -1, cv2.LINE_AA)
    top = canon[0, 1]
    forehead = np.stack([0.98 * np.cos(a), top - (top + 1.25) * np.sin(a)], 1)  # image-right → image-left
    outline = np.concatenate([pts[:17], proj(forehead, 0.0)])
    hair_top = np.stack([1.1 * np.cos(a), top - (top + 1.42) * np.sin(a)], 1)
    _poly(img, proj(hair_top, -0.1), idt.hair)
    face = np.zeros(img.shape[:2], np.float32)
    _poly(face, outline, 1.0)
    soft = cv2.GaussianBlur(face, (0, 0), 0.12 * pose.scale)[..., None]
    img = img * (1 - face[..., None]) + face[..., None] * skin * (0.78 + 0.22 * soft)
    if idt.hair_style != 2:                                          # fringe over the forehead
        fringe_y = -0.95 if idt.hair_style == 0 else -0.8
        fr = np.stack([0.99 * np.cos(a), top - (top + 1.3) * np.sin(a)], 1)
        fr = np.concatenate([fr, [[-0.9, fringe_y + 0.05], [0.0, fringe_y], [0.9, fringe_y + 0.05]]])
        _poly(img, proj(fr, 0.1), idt.hair)

    shade = np.zeros(img.shape[:2], np.float32)                      # darkening, 0–1
    light = np.zeros(img.shape[:2], np.float32)                      # brightening, 0–1
    thick = max(1, round(pose.scale * 0.03))
    for line, s in _wrinkles(canon, g):
        if s > 0.05:
            _poly(shade, proj(line), WRINKLE_DARKNESS * idt.folds * min(s, 1.0), closed=False, thick=thick)
    for side, eye in ((-1, canon[36:42].mean(0)), (1, canon[42:48].mean(0))):
        c = proj(eye + _v(0.02 * side, 0.28))[0]                       # AU6 cheek bulge (highlight + shadow)
        ax = (int(0.2 * pose.scale), int(0.1 * pose.scale))
        cv2.ellipse(light, tuple(int(v) for v in c), ax, 0, 0, 360, 0.5 * idt.folds * g[6], -1)
        cv2.ellipse(shade, tuple(int(v) for v in c + _v(0, 0.12 * pose.scale)), ax, 0, 0, 180, 0.25 * g[6], -1)
    chin = canon[57] + _v(0, 0.14)                                     # AU17 chin boss: mottled patch
    for _ in range(6):
        d = rng.uniform(-0.08, 0.08, 2)
        cv2.circle(shade, tuple(int(v) for v in proj(chin + d)[0]), max(1, int(0.02 * pose.scale)),
                   0.3 * g[17], -1)
    shade = cv2.GaussianBlur(shade, (0, 0), 0.6 + 0.012 * pose.scale)
    light = cv2.GaussianBlur(light, (0, 0), 0.05 * pose.scale)
    inside = face[..., None]
    img = img * (1 - inside * shade[..., None]) + inside * light[..., None] * (255 - img) * 0.5
    _features(img, idt, pts, pose, g)
    return img, pts


def _features(img: np.ndarray, idt: Identity, pts: np.ndarray, pose: Pose, g: dict[int, float]) -> None:
    """Brows, eyes, nose and mouth drawn from the image landmarks (in place)."""
    bt = max(1, round(idt.brow_thick * pose.scale))
    for k in (17, 22):
        _poly(img, pts[k:k + 5], np.array(idt.hair) * 0.8, closed=False, thick=bt)
    for k in (36, 42):
        eye = pts[k:k + 6]
        x0, y0 = np.floor(eye.min(0)).astype(int) - 2                # work in the eye's box only (speed)
        x1, y1 = np.ceil(eye.max(0)).astype(int) + 3
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, img.shape[1]), min(y1, img.shape[0])
        if x1 <= x0 or y1 <= y0:
            continue
        roi, local, off = img[y0:y1, x0:x1], eye - _v(x0, y0), (int(x0), int(y0))
        mask = np.zeros(roi.shape[:2], np.float32)
        _poly(mask, local, 1.0)
        iris = np.zeros_like(roi)
        centre = tuple(int(v) for v in eye.mean(0) - off)
        cv2.circle(iris, centre, max(1, int(0.06 * pose.scale)), idt.iris, -1, cv2.LINE_AA)
        cv2.circle(iris, centre, max(1, int(0.025 * pose.scale)), (10, 10, 10), -1)
        eyeball = np.where(iris.sum(-1, keepdims=True) > 0, iris, np.float32(225.0))
        roi[:] = roi * (1 - mask[..., None]) + mask[..., None] * eyeball
        _poly(img, eye[[0, 1, 2, 3]], (25, 25, 30), closed=False, thick=max(1, bt // 2))
        _poly(img, eye[[3, 4, 5, 0]], np.array(idt.skin) * 0.6, closed=False, thick=1)
    skin = np.array(idt.skin)
    _poly(img, pts[27:31], skin * 0.82, closed=False, thick=max(1, bt // 2))
    _poly(img, pts[31:36], skin * 0.6, closed=False, thick=1)
    for i in (32, 34):
        axes = (max(1, int(0.03 * pose.scale)), max(1, int(0.015 * pose.scale)))
        cv2.ellipse(img, tuple(int(v) for v in pts[i]), axes, 0, 0, 360, tuple(float(v) for v in skin * 0.35), -1,
                    cv2.LINE_AA)
    gap = np.linalg.norm(pts[66] - pts[62])
    if gap > 0.01 * pose.scale:                                      # open mouth: dark cavity + upper teeth
        _poly(img, pts[60:68], (30, 20, 40))
        teeth = pts[[60, 61, 62, 63, 64]].copy()
        low = teeth + _v(0, min(gap * 0.45, 0.05 * pose.scale))
        _poly(img, np.concatenate([teeth, low[::-1]]), (215, 225, 230))
    lip = np.array(idt.lip) * (1 - 0.25 * max(g[23], g[24]))         # pressed lips lose colour
    _poly(img, pts[[48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]], lip)
    _poly(img, pts[[54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64]], lip * 1.05)
    _poly(img, pts[60:65], lip * 0.55, closed=False, thick=1)
    if idt.glasses:                                                  # frames centred on the eye corners
        iod = np.linalg.norm(pts[42] - pts[39])
        for a, b in ((36, 39), (42, 45)):
            centre = tuple(int(v) for v in (pts[a] + pts[b]) / 2)
            axes = (int(0.75 * iod), int(0.5 * iod))
            cv2.ellipse(img, centre, axes, 0, 0, 360, (30, 30, 35), max(1, bt // 2 + 1), cv2.LINE_AA)
        _poly(img, pts[[39, 27, 42]] + _v(0, -0.1 * iod), (30, 30, 35), closed=False, thick=max(1, bt // 2))


def camera(img: np.ndarray, style: DomainStyle, light_dir: float, rng: np.random.Generator) -> np.ndarray:
    """Lighting, optics and sensor of a domain: float BGR → uint8 BGR."""
    w = img.shape[1]
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    img = img * style.gain * (1 - style.light_side * 0.5 * (1 + light_dir * x))
    if style.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), style.blur_sigma)
    img = img + np.float32(style.noise_sigma) * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
