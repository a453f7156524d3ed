"""AU centres, location masks, signed targets, flip geometry and the invalidating centre cache."""

from __future__ import annotations

import math

import numpy as np
import pytest

from au_ttt.data.au_regions import au_centres
from au_ttt.data.heatmaps import (
    HeatmapConfig,
    load_centre_cache,
    location_maps,
    signed_targets,
    write_centre_cache,
)
from au_ttt.data.transforms import Geometry, apply_centres, apply_points, flip_maps
from au_ttt.errors import InputError

SIGMA = 40.0  # FG-Net: 20 px on a 128 heatmap of a 256 crop


def hand_face() -> np.ndarray:
    """68 points with hand-chosen brows, eyes and lower lip (the rest on a grid, far from them)."""
    p = np.stack([np.arange(68) * 1.0, np.full(68, 250.0)], 1)
    p[17:22] = [(60, 70), (70, 65), (80, 62), (90, 65), (100, 70)]        # left brow, mean (80, 66.4)
    p[22:27] = [(140, 70), (150, 65), (160, 62), (170, 65), (180, 70)]    # right brow, mean (160, 66.4)
    p[36:42] = [(80, 100), (85, 95), (95, 95), (100, 100), (95, 105), (85, 105)]        # mean (90, 100)
    p[42:48] = [(140, 100), (145, 95), (155, 95), (160, 100), (155, 105), (145, 105)]  # mean (150, 100)
    p[56], p[58] = (130, 180), (110, 180)                                  # IOD = |p42 − p39| = 40
    return p


def test_centres_match_hand_values() -> None:
    c = au_centres(hand_face(), [1, 2, 4, 6, 17])
    assert c[0].tolist() == [[100, 70], [140, 70]]                 # AU1: points 21, 22
    assert c[1].tolist() == [[60, 70], [180, 70]]                  # AU2: points 17, 26
    np.testing.assert_allclose(c[2], [[80, 66.4], [160, 66.4]])    # AU4: brow centres
    np.testing.assert_allclose(c[3], [[90, 140], [150, 140]])      # AU6: eye centres + 1·IOD (40) down
    np.testing.assert_allclose(c[4], [[130, 200], [110, 200]])     # AU17: 56, 58 + 0.5·IOD (20) down


def test_location_map_values_cutoff_and_cap() -> None:
    # grid 14 over 224 px: cell k is centred on pixel 16k + 7.5; centre on cell (6, 6), other far away
    c = np.array([[[103.5, 103.5], [5000.0, 5000.0]]])
    m = location_maps(c, 14, 224, SIGMA)[0]
    assert m[6, 6] == pytest.approx(1.0)
    assert m[6, 7] == pytest.approx(math.exp(-16**2 / (2 * SIGMA**2)), rel=1e-6)    # 0.9231
    assert m[6, 13] == pytest.approx(math.exp(-112**2 / (2 * SIGMA**2)), rel=1e-5)  # 0.0198 ≥ 0.01: kept
    assert m[6, 14 - 14] == pytest.approx(math.exp(-96**2 / (2 * SIGMA**2)), rel=1e-5)
    c_far = np.array([[[7.5, 7.5], [5000.0, 5000.0]]])
    assert location_maps(c_far, 14, 224, SIGMA)[0][0, 8] == 0.0       # exp(−5.12) = 0.006 < 0.01 → 0
    both = location_maps(np.array([[[103.5, 103.5], [119.5, 103.5]]]), 14, 224, SIGMA)[0]
    assert both.max() == 1.0 and both[6, 6] == 1.0                  # 1 + 0.92 capped at 1
    nan = location_maps(np.array([[[np.nan, np.nan], [103.5, 103.5]]]), 14, 224, SIGMA)[0]
    assert nan[6, 6] == pytest.approx(1.0) and np.isfinite(nan).all()


def test_signed_targets_follow_labels_and_mask() -> None:
    loc = np.full((3, 2, 2), 0.5, np.float32)
    out = signed_targets(loc, np.array([1.0, 0.0, 0.0]), np.array([True, True, False]))
    assert out[0].tolist() == [[0.5, 0.5]] * 2
    assert out[1].tolist() == [[-0.5, -0.5]] * 2
    assert out[2].tolist() == [[0.0, 0.0]] * 2


def test_flip_twice_is_identity_and_commutes_with_rendering() -> None:
    c = au_centres(hand_face(), [1, 2, 4, 6, 17]) + 10
    g = Geometry(ox=16, oy=8, size=224, flip=True)
    back = Geometry(0, 0, 224, True)
    np.testing.assert_allclose(apply_centres(apply_centres(c, g), back), c - [16, 8], atol=1e-4)
    maps = location_maps(apply_centres(c, Geometry(16, 8, 224, False)), 14, 224, SIGMA)
    np.testing.assert_array_equal(flip_maps(flip_maps(maps)), maps)
    np.testing.assert_allclose(location_maps(apply_centres(c, g), 14, 224, SIGMA), flip_maps(maps), atol=1e-6)


def test_flip_of_landmarks_and_centres_agree() -> None:
    p = hand_face()
    aus = [1, 2, 4, 6, 7, 9, 10, 12, 17, 23, 25, 26]
    g = Geometry(0, 0, 224, True)
    np.testing.assert_allclose(au_centres(apply_points(p, g), aus), apply_centres(au_centres(p, aus), g, aus),
                               atol=1e-4)


def test_flip_moves_a_one_sided_change_to_the_other_side() -> None:
    p, q = hand_face(), hand_face()
    q[21] += (0, 40)    # perturb only AU1's image-left centre (inner end of the left brow)
    g_id, g_flip = Geometry(0, 0, 224, False), Geometry(0, 0, 224, True)
    cols = np.arange(14) + 0.5

    def change_x(geom: Geometry) -> float:
        diff = np.abs(location_maps(apply_centres(au_centres(q, [1]), geom), 14, 224, SIGMA)[0]
                      - location_maps(apply_centres(au_centres(p, [1]), geom), 14, 224, SIGMA)[0])
        return float((diff.sum(0) * cols).sum() / diff.sum())   # column centre of mass of the change

    assert change_x(g_id) < 7.0 < change_x(g_flip)   # left half → right half (midline at 7)
    assert change_x(g_flip) == pytest.approx(14 - change_x(g_id), abs=1e-4)


def test_cache_refuses_changed_landmarks_or_parameters(tmp_path) -> None:
    rng = np.random.default_rng(0)
    aligned = np.stack([hand_face() + rng.normal(0, 2, (68, 2)) for _ in range(4)]).astype(np.float32)
    valid = np.array([True, True, False, True])
    cfg, aus = HeatmapConfig(), (1, 2, 4, 6, 17)
    manifest = write_centre_cache(tmp_path, aligned, valid, cfg, index_hash="abc", aus=aus)
    assert manifest["valid_frames"] == 3 and manifest["excluded_frames"] == 1
    centres = load_centre_cache(tmp_path, aligned, valid, aus, cfg)
    assert centres.shape == (4, 5, 2, 2) and centres.dtype == np.float32
    assert np.isnan(centres[2]).all() and np.isfinite(centres[[0, 1, 3]]).all()
    np.testing.assert_allclose(centres[0], au_centres(aligned[0], aus), atol=1e-4)
    moved = aligned.copy()
    moved[3, 21, 0] += 0.5
    with pytest.raises(InputError, match="stale"):
        load_centre_cache(tmp_path, moved, valid, aus, cfg)
    with pytest.raises(InputError, match="stale"):
        load_centre_cache(tmp_path, aligned, valid, aus, HeatmapConfig(sigma_frac=0.1))
    subset = load_centre_cache(tmp_path, aligned, valid, (17, 1), cfg)       # any subset, any order
    np.testing.assert_array_equal(subset[:, 0], centres[:, 4])
    np.testing.assert_array_equal(subset[:, 1], centres[:, 0])
    with pytest.raises(InputError, match=r"not \[9\]"):
        load_centre_cache(tmp_path, aligned, valid, (1, 9), cfg)
    with pytest.raises(InputError, match="au-ttt heatmaps"):
        load_centre_cache(tmp_path / "nowhere", aligned, valid, aus, cfg)
