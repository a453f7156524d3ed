"""AU RoI heatmaps from FG-Net's landmark-anchored centres: label-free location masks and signed targets.

Per AU, each of its two centres (:func:`au_centres`) contributes a Gaussian exp(−d²/2σ²), zeroed below 0.01
and capped at 1 (ihp-lab/FG-Net code/data_utils.py ``add_noise``). The **location mask** is the capped sum of the two,
in [0, 1]: it tells the AU RoI TTT branch where to look and needs no label. The **signed target** adds the
Gaussians when the AU is active and subtracts them when inactive, clipped to [−1, 1] — i.e. ±location mask;
a missing label gives a zero map (and a False label mask).

σ: FG-Net uses 20 px on a 128 px heatmap of a 256 px crop, i.e. 20/128 of the crop side (40 px at 256).
Because our random 224 crop is cut from the 256 crop without rescaling, σ stays 40 px, = 2.5 tokens of 16 px.

Cache choice: we cache the **aligned AU centres** (N, n_AU, 2, 2) float32 — 16 floats per AU and frame, one
npz per dataset/landmark set — and render the maps per sample, after moving the centres with the sample's
crop offset and flip. That is exact (no resampling of cached maps), cheap (a 14×14 render of 24 Gaussians),
and makes flip trivially consistent: mirroring the centres equals mirroring the rendered map exactly,
because the cell centres of a g-cell grid are symmetric about the image centre.
The cache key hashes the aligned landmarks, the AU list, the centre rules and every map parameter, so a
change of any of them makes :func:`load_centre_cache` refuse the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from au_ttt.data.au_regions import AU_CENTRE_RULES, au_centres
from au_ttt.data.rowfiles import atomic_save_npz
from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write_json, building_dir
from au_ttt.sections import HeatmapConfig  # the section: torch/numpy-free, with the others

__all__ = [
    "CACHE_AUS", "CACHE_FILE", "MANIFEST_FILE", "HeatmapConfig", "build_centre_cache", "cache_key",
    "load_cache_manifest", "load_centre_cache", "location_maps", "save_centre_cache", "signed_targets",
    "write_centre_cache",
]

log = logging.getLogger(__name__)
CACHE_AUS: tuple[int, ...] = tuple(sorted(AU_CENTRE_RULES))   # every AU with a centre rule (15)
CACHE_FILE = "au_centres.npz"
MANIFEST_FILE = "manifest.json"
_FORMAT = 1


def location_maps(centres: np.ndarray, size: int, extent: int, sigma_px: float, cutoff: float = 0.01
                  ) -> np.ndarray:
    """Label-free masks (n_AU, size, size) in [0, 1] for centres in pixel coordinates of an extent² image.

    Cell k covers pixels [k·extent/size, (k+1)·extent/size); it is sampled at its centre. A NaN centre
    contributes nothing.
    """
    pos = (np.arange(size) + 0.5) * extent / size - 0.5                      # (size,) cell centres in px
    c = np.asarray(centres, np.float64)                                      # (A, 2, 2)
    dx = (pos[None, None, :] - c[..., 0:1]) ** 2                             # (A, 2, size)
    dy = (pos[None, None, :] - c[..., 1:2]) ** 2                             # (A, 2, size)
    g = np.exp(-(dy[..., :, None] + dx[..., None, :]) / (2 * sigma_px**2))  # (A, 2, size, size)
    g = np.where(np.isfinite(g) & (g >= cutoff), g, 0.0)
    return np.minimum(g.sum(1), 1.0).astype(np.float32)


def signed_targets(location: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """FG-Net signed maps: +location where the AU is active, −location where inactive, 0 where unknown."""
    sign = np.where(mask, np.where(labels > 0.5, 1.0, -1.0), 0.0).astype(np.float32)
    return np.clip(sign[:, None, None] * location, -1.0, 1.0)


# ------------------------------------------------------------------------------------------- the cache
def build_centre_cache(aligned: np.ndarray, valid: np.ndarray, aus: tuple[int, ...]) -> np.ndarray:
    """AU centres (N, n_AU, 2, 2) float32 from aligned landmarks (N, 68, 2); NaN for invalid rows."""
    out = np.full((len(aligned), len(aus), 2, 2), np.nan, np.float32)
    for i in np.flatnonzero(valid):
        out[i] = au_centres(aligned[i], aus)
    return out


def cache_key(aligned: np.ndarray, valid: np.ndarray, aus: tuple[int, ...], cfg: HeatmapConfig) -> str:
    """Hash of everything the maps depend on: landmarks, validity, AU list, centre rules, parameters."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(aligned, np.float32).tobytes())
    h.update(np.ascontiguousarray(valid, bool).tobytes())
    rules = {au: AU_CENTRE_RULES[au] for au in aus}
    h.update(json.dumps({"aus": list(aus), "rules": repr(rules), "cfg": asdict(cfg), "format": _FORMAT},
                        sort_keys=True).encode())
    return h.hexdigest()[:20]


def write_centre_cache(out_dir: str | Path, aligned: np.ndarray, valid: np.ndarray, cfg: HeatmapConfig,
                       index_hash: str, aus: tuple[int, ...] = CACHE_AUS,
                       subjects: tuple[str, ...] | None = None) -> dict:
    """Build ``au_centres.npz`` + ``manifest.json`` and put them in place as folder ``out_dir``, atomically.

    By default every AU with a centre rule is cached, so one cache serves a dataset's own AUs and the
    other dataset's AUs (cross-domain RoI masks) alike. ``subjects`` marks a shard's cache.
    """
    centres = build_centre_cache(aligned, valid, aus)
    return save_centre_cache(out_dir, centres, aligned, valid, cfg, index_hash, aus, subjects)


def save_centre_cache(out_dir: str | Path, centres: np.ndarray, aligned: np.ndarray, valid: np.ndarray,
                      cfg: HeatmapConfig, index_hash: str, aus: tuple[int, ...],
                      subjects: tuple[str, ...] | None = None) -> dict:
    """Write already computed ``centres`` as cache folder ``out_dir`` (built aside, renamed into place)."""
    nan_centres = int((~np.isfinite(centres[valid]).all(-1)).sum())
    manifest = {
        "format": _FORMAT, "key": cache_key(aligned, valid, aus, cfg), "index_hash": index_hash,
        "subjects": list(subjects) if subjects is not None else None,
        "aus": list(aus), "frames": len(valid), "valid_frames": int(valid.sum()),
        "excluded_frames": int((~valid).sum()), "nan_centres": nan_centres, "params": asdict(cfg),
        "content": "aligned FG-Net AU centres (N, n_AU, 2, 2) float32, crop px; maps rendered per sample",
    }
    with building_dir(out_dir) as tmp:
        atomic_save_npz(tmp / CACHE_FILE, centres=centres, aus=np.array(aus), key=np.array(manifest["key"]))
        atomic_write_json(tmp / MANIFEST_FILE, manifest)
    if nan_centres:
        log.warning("%d AU centres are NaN (landmarks missing); their maps will be empty", nan_centres)
    return manifest


def load_cache_manifest(cache_dir: str | Path) -> dict:
    """``manifest.json`` of a cache folder (InputError naming the file when absent or unreadable)."""
    path = Path(cache_dir) / MANIFEST_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: heatmap cache manifest not found; build it with `au-ttt heatmaps`") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable manifest ({err}); rerun `au-ttt heatmaps`") from None


def load_centre_cache(cache_dir: str | Path, aligned: np.ndarray, valid: np.ndarray, aus: tuple[int, ...],
                      cfg: HeatmapConfig) -> np.ndarray:
    """Centres (N, len(aus), 2, 2) of the requested AUs, after checking that the cache was built from
    these aligned landmarks and parameters."""
    cache_dir = Path(cache_dir)
    path = cache_dir / CACHE_FILE
    if not path.is_file():
        raise InputError(f"{path}: heatmap cache not found; build it with `au-ttt heatmaps`")
    with np.load(path) as z:
        centres, cached, stored = z["centres"], tuple(int(a) for a in z["aus"]), str(z["key"])
    expected = cache_key(aligned, valid, cached, cfg)
    if stored != expected:
        raise InputError(f"{path}: stale heatmap cache (key {stored} ≠ {expected}): the aligned landmarks, "
                         "centre rules or heatmap parameters changed since it was built; "
                         "rerun `au-ttt heatmaps`")
    missing = [au for au in aus if au not in cached]
    if missing:
        raise InputError(f"{path}: caches AUs {list(cached)}, not {missing}; rerun `au-ttt heatmaps`")
    return centres[:, [cached.index(au) for au in aus]]
