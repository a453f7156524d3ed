"""Similarity fit, aligned crops and the crop store."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from au_ttt.data.align import (
    CROP_STATUS,
    REPORT_FILE,
    TEMPLATE_68,
    AlignConfig,
    align_face,
    crop_path,
    estimate_similarity,
    load_aligned,
    template_points,
    write_crops,
)
from au_ttt.data.au_regions import MIRROR_68
from au_ttt.data.landmarks import LandmarkSet, index_hash
from au_ttt.errors import InputError


def similarity(deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, np.array(shift)[:, None]])


def warp(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def test_template_is_symmetric_and_placed_like_ffhq() -> None:
    mirrored = TEMPLATE_68[MIRROR_68] * [-1, 1]
    np.testing.assert_allclose(mirrored, TEMPLATE_68, atol=1e-4)
    t = template_points(AlignConfig(size=256))
    eye_l, eye_r = t[36:42].mean(0), t[42:48].mean(0)
    assert np.linalg.norm(eye_r - eye_l) == pytest.approx(64.0, abs=0.01)  # side = 4·eye distance (2·2.0·e2e)
    assert (eye_l[0] + eye_r[0]) / 2 == pytest.approx(127.5)      # horizontally centred
    assert eye_l[1] == pytest.approx(eye_r[1])                     # eyes level


def test_similarity_recovered_despite_nan_jaw() -> None:
    m = similarity(12.0, 1.7, (30.0, -8.0))
    src = TEMPLATE_68 * 50 + 100
    dst = warp(src, m)
    src_nan = src.copy()
    src_nan[:17] = np.nan
    np.testing.assert_allclose(estimate_similarity(src_nan, dst), m, atol=1e-9)
    src_nan[17:60] = np.nan                                        # 8 finite points left: still enough
    np.testing.assert_allclose(estimate_similarity(src_nan, dst), m, atol=1e-9)
    src_nan[60] = np.nan                                           # 7 left: refused
    assert estimate_similarity(src_nan, dst) is None


def test_align_face_maps_landmarks_and_pixels_to_the_template() -> None:
    cfg = AlignConfig(size=256)
    target = template_points(cfg)
    inv = similarity(-20.0, 0.8, (40.0, 60.0))                     # template → a rotated, smaller source face
    src_pts = warp(target, inv)
    image = np.zeros((400, 400, 3), np.uint8)
    x, y = np.round(src_pts[30]).astype(int)                       # a bright dot on the nose tip
    image[y - 1:y + 2, x - 1:x + 2] = 255
    src_pts[:17] = np.nan                                          # 49-point data: no jaw
    crop, aligned, m = align_face(image, src_pts, cfg)
    assert crop.shape == (256, 256, 3) and m.shape == (2, 3)
    np.testing.assert_allclose(aligned[17:], target[17:], atol=1e-3)
    assert np.isnan(aligned[:17]).all()
    peak = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    assert abs(peak[1] - target[30, 0]) <= 2 and abs(peak[0] - target[30, 1]) <= 2


def _store(tmp_path, n_ok: int = 2):
    rng = np.random.default_rng(0)
    images = [f"S1/T1/{i}.png" for i in range(3)]
    for rel in images:
        (tmp_path / "raw" / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "raw" / rel), rng.integers(0, 255, (300, 320, 3), dtype=np.uint8))
    index = pd.DataFrame({"dataset": "bp4d", "subject": "S1", "sequence": "T1", "frame": [0, 1, 2],
                          "image": images, "part": 1, "AU1": 1})
    pts = np.stack([warp(template_points(), similarity(5.0 * i, 1.0, (20.0, 10.0))) for i in range(3)])
    success = np.array([True, True, False])
    lms = LandmarkSet(pts.astype(np.float32), success.astype(np.float32), success, index_hash(index), "test")
    return index, lms


def test_write_crops_skips_and_counts_failed_frames(tmp_path) -> None:
    index, lms = _store(tmp_path)
    report = write_crops(index, tmp_path / "raw", lms, tmp_path / "crops", progress=False)
    counts = {k: report[k] for k in ("frames", *CROP_STATUS)}
    assert counts == {"frames": 3, "written": 2, "skipped_no_landmarks": 1, "skipped_no_fit": 0,
                      "skipped_bad_image": 0}
    assert report["bad_image_frames"] == [] and report["config"]["size"] == 256 and report["subjects"] is None
    assert json.loads((tmp_path / "crops" / REPORT_FILE).read_text()) == report
    assert crop_path(tmp_path / "crops", "S1/T1/0.png").name == "0.jpg"
    assert cv2.imread(str(crop_path(tmp_path / "crops", "S1/T1/1.png"))).shape == (256, 256, 3)
    assert not crop_path(tmp_path / "crops", "S1/T1/2.png").exists()
    aligned = load_aligned(tmp_path / "crops", index)
    assert aligned.valid.tolist() == [True, True, False] and aligned.size == 256
    np.testing.assert_allclose(aligned.points[1], template_points(), atol=1e-3)
    with pytest.raises(InputError, match="another frame index"):
        load_aligned(tmp_path / "crops", index.iloc[:2])


def test_bad_images_are_skipped_named_and_the_old_store_survives_a_failure(tmp_path, monkeypatch) -> None:
    index, lms = _store(tmp_path)
    lms.success[2] = True                                           # all three have landmarks now
    write_crops(index, tmp_path / "raw", lms, tmp_path / "crops", progress=False)
    before = {p: p.read_bytes() for p in sorted((tmp_path / "crops").rglob("*")) if p.is_file()}
    (tmp_path / "raw" / "S1/T1/0.png").write_bytes(b"")             # empty
    raw1 = tmp_path / "raw" / "S1/T1/1.png"
    raw1.write_bytes(raw1.read_bytes()[:200])                       # truncated
    lms.image_error[2] = 4                                          # landmark stage found it not an image
    report = write_crops(index, tmp_path / "raw", lms, tmp_path / "crops", progress=False)
    assert report["written"] == 0 and report["skipped_bad_image"] == 3
    assert report["bad_image_frames"] == [{"image": "S1/T1/0.png", "reason": "empty"},
                                          {"image": "S1/T1/1.png", "reason": "truncated"},
                                          {"image": "S1/T1/2.png", "reason": "not_an_image"}]
    aligned = load_aligned(tmp_path / "crops", index)
    assert not aligned.valid.any() and aligned.status.tolist() == [3, 3, 3]
    assert aligned.image_error.tolist() == [2, 3, 4]
    assert not list((tmp_path / "crops" / "images").rglob("*.jpg"))  # no grey crop, no stale old crop
    # a run that dies half-way leaves the previous complete store untouched and no temporary behind
    _store(tmp_path)                                                # undamaged images again
    lms.image_error[:] = 0
    write_crops(index, tmp_path / "raw", lms, tmp_path / "crops", progress=False)
    done = {p: p.read_bytes() for p in sorted((tmp_path / "crops").rglob("*")) if p.is_file()}
    assert done == before                                           # same inputs, same bytes
    calls = []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return align_face(*args, **kwargs)

    monkeypatch.setattr("au_ttt.data.align.align_face", dying)
    with pytest.raises(RuntimeError, match="killed"):
        write_crops(index, tmp_path / "raw", lms, tmp_path / "crops", progress=False)
    assert {p: p.read_bytes() for p in sorted((tmp_path / "crops").rglob("*")) if p.is_file()} == done
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crops", "raw"]
