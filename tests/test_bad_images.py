"""Damaged frames in BP4D- and DISFA-format copies: empty, truncated and non-image files are counted, named
exclusions of the stage that meets them; every stage completes; training data never contains them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from replicas import damage_image, tiny_synthau

from au_ttt.cli import main
from au_ttt.data.align import load_aligned
from au_ttt.data.dataset import AUFrameDataset
from au_ttt.data.frame_index import load_index, report_path
from au_ttt.data.heatmaps import HeatmapConfig

CONFIG = "crops: {size: 80}\nheatmaps: {crop_size: 80, input_size: 64, patch_size: 16, target_size: 4}\n"
HEATMAPS = HeatmapConfig(crop_size=80, input_size=64, patch_size=16, target_size=4)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return tiny_synthau(tmp_path_factory.mktemp("bad") / "synth", bp4d_frames=3, disfa_frames=4)


def run_ok(*argv: str) -> None:
    assert main([*argv, "--no-progress"]) == 0, argv


def frames_of(index, images: list[str]) -> list[int]:
    pos = {img: i for i, img in enumerate(index["image"])}
    return [pos[i] for i in images]


def pipeline(tmp: Path, index_path: Path, raw: Path, backend: str, workers: int = 0) -> tuple[dict, dict]:
    """landmarks → crops → heatmaps; returns the landmark and crop reports."""
    cfg = tmp / "config.yaml"
    cfg.write_text(CONFIG)
    common = ["--index", str(index_path), "--config", str(cfg)]
    run_ok("landmarks", *common, "--backend", backend, "--dataset-root", str(raw), "--workers", str(workers),
           "--out", str(tmp / "landmarks.npz"))
    run_ok("crops", *common, "--landmarks", str(tmp / "landmarks.npz"), "--out", str(tmp / "crops"))
    run_ok("heatmaps", *common, "--crops", str(tmp / "crops"), "--out", str(tmp / "heatmaps"))
    return (json.loads((tmp / "landmarks.report.json").read_text()),
            json.loads((tmp / "crops" / "crops.report.json").read_text()))


def assert_never_trained_on(tmp: Path, index, bad_rows: list[int]) -> None:
    ds = AUFrameDataset(index, tmp / "crops", tmp / "heatmaps", cfg=HEATMAPS)
    assert set(ds.rows.tolist()) == set(range(len(index))) - set(bad_rows)
    assert ds.excluded == len(bad_rows)
    assert {int(ds[i]["row"]) for i in range(len(ds))}.isdisjoint(bad_rows)


@pytest.mark.parametrize("backend,workers", [("dlib", 2), ("provided", 0)])
def test_bp4d_copy_with_damaged_frames(synth, tmp_path, backend, workers) -> None:
    import shutil

    raw = tmp_path / "BP4D"
    shutil.copytree(synth / "BP4D", raw)
    jpgs = sorted(p.relative_to(raw).as_posix() for p in raw.glob("*/T1/*.jpg"))
    assert len(jpgs) == 9
    empty, cut, text, later = jpgs[0], jpgs[4], jpgs[8], jpgs[2]
    for name, how in ((empty, "empty"), (cut, "truncated"), (text, "text")):
        damage_image(raw / name, how)
    run_ok("data", "index", "--dataset", "bp4d", "--root", str(raw), "--out", str(tmp_path / "index.parquet"))
    report = json.loads(report_path(tmp_path / "index.parquet").read_text())
    assert report["rows"] == 8 and report["excluded_frames"] == {"empty_image": 1}
    assert report["excluded_images"] == {"empty_image": [empty]}   # zero-byte: caught by a stat, named
    damage_image(raw / later, "empty")                                # damaged after indexing
    index = load_index(tmp_path / "index.parquet")
    lm_report, crop_report = pipeline(tmp_path, tmp_path / "index.parquet", raw, backend, workers)
    named = sorted([{"image": later, "reason": "empty"}, {"image": cut, "reason": "truncated"},
                    {"image": text, "reason": "not_an_image"}], key=lambda f: frames_of(index, [f["image"]]))
    if backend == "dlib":                                             # the first stage that decodes names them
        assert lm_report["bad_image_frames"] == named and lm_report["detected"] == 5
    else:
        assert lm_report["bad_image_frames"] == [] and lm_report["detected"] == 8
    assert crop_report["bad_image_frames"] == named
    assert crop_report["bad_images_by_reason"] == {"empty": 1, "truncated": 1, "not_an_image": 1}
    assert crop_report["written"] == 5 and crop_report["skipped_bad_image"] == 3
    bad = frames_of(index, [later, cut, text])
    assert load_aligned(tmp_path / "crops", index).image_error[bad].tolist() == [2, 3, 4]  # empty, truncated, text
    assert_never_trained_on(tmp_path, index, bad)


def test_disfa_copy_with_damaged_decoded_frames(synth, tmp_path) -> None:
    raw, frames = synth / "DISFA", tmp_path / "frames"
    run_ok("data", "frames", "--root", str(raw), "--out", str(frames))
    subjects = sorted(p.name for p in frames.iterdir())
    assert len(subjects) == 3
    a, b, c = subjects
    damage_image(frames / a / "1.jpg", "empty")
    damage_image(frames / b / "2.jpg", "truncated")
    damage_image(frames / c / "0.jpg", "text")
    index_path = tmp_path / "index.parquet"
    run_ok("data", "index", "--dataset", "disfa", "--root", str(raw), "--frames", str(frames),
           "--out", str(index_path))
    report = json.loads(report_path(index_path).read_text())
    assert report["rows"] == 11 and report["excluded_images"] == {"empty_image": [f"{a}/1.jpg"]}
    index = load_index(index_path)
    _, crop_report = pipeline(tmp_path, index_path, raw, "provided")
    named = [{"image": f"{b}/2.jpg", "reason": "truncated"}, {"image": f"{c}/0.jpg", "reason": "not_an_image"}]
    assert crop_report["bad_image_frames"] == sorted(named, key=lambda f: frames_of(index, [f["image"]]))
    assert crop_report["written"] == 9
    bad = frames_of(index, [f"{b}/2.jpg", f"{c}/0.jpg"])
    assert_never_trained_on(tmp_path, index, bad)
    assert np.isnan(load_aligned(tmp_path / "crops", index).points[bad]).all()
