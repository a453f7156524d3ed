"""Sharded preprocessing: per-subject landmarks/crops/heatmaps + `au-ttt gather` = the unsharded outputs, byte
for byte; shards refuse each other's inputs; gaps and overlaps are named; empty shards are valid."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from replicas import tiny_synthau, tree_bytes

from au_ttt.cli import main
from au_ttt.data.align import load_aligned
from au_ttt.data.frame_index import load_index
from au_ttt.data.landmarks import load_landmarks
from au_ttt.data.protocol import BP4D_PARTS

ABSENT = BP4D_PARTS[1][1]   # a published subject the tiny copy lacks (it takes the first of each part)


@pytest.fixture(scope="module")
def bp4d(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("shards")
    raw = tiny_synthau(base / "synth", bp4d_frames=3) / "BP4D"
    index = base / "index.parquet"
    assert main(["data", "index", "--dataset", "bp4d", "--root", str(raw), "--out", str(index),
                 "--no-progress"]) == 0
    subjects = sorted(load_index(index)["subject"].unique())
    assert len(subjects) == 3
    return {"base": base, "raw": raw, "index": index, "subjects": subjects}


def stages(d: dict, out: Path, subjects: list[str] | None, backend: str = "provided", workers: int = 0) -> None:
    """landmarks → crops → heatmaps into OUT/{landmarks.npz, crops, heatmaps}, optionally for some subjects."""
    common = ["--index", str(d["index"]), "--no-progress", *(["--subjects", *subjects] if subjects else [])]
    assert main(["landmarks", *common, "--backend", backend, "--dataset-root", str(d["raw"]),
                 "--workers", str(workers), "--out", str(out / "landmarks.npz")]) == 0
    assert main(["crops", *common, "--landmarks", str(out / "landmarks.npz"), "--size", "96",
                 "--out", str(out / "crops")]) == 0
    assert main(["heatmaps", *common, "--crops", str(out / "crops"), "--out", str(out / "heatmaps")]) == 0


def gather(d: dict, out: Path, shards: list[Path]) -> int:
    return main(["gather", "--index", str(d["index"]), "--shards", *map(str, shards), "--no-progress",
                 "--out-landmarks", str(out / "landmarks.npz"), "--out-crops", str(out / "crops"),
                 "--out-heatmaps", str(out / "heatmaps")])


@pytest.mark.parametrize("backend", ["provided", "dlib"])
def test_gathered_shards_equal_the_unsharded_run_byte_for_byte(bp4d, tmp_path, backend) -> None:
    a, b, c = bp4d["subjects"]
    stages(bp4d, tmp_path / "full", None, backend)
    shards = [tmp_path / "s1", tmp_path / "s2", tmp_path / "s3"]
    stages(bp4d, shards[0], [c, a], backend, workers=2 if backend == "dlib" else 0)  # order of names is free
    stages(bp4d, shards[1], [b], backend)
    stages(bp4d, shards[2], [ABSENT], backend)        # a published subject this copy lacks: empty, valid
    assert gather(bp4d, tmp_path / "merged", shards) == 0
    full, merged = tree_bytes(tmp_path / "full"), tree_bytes(tmp_path / "merged")
    assert sorted(full) == sorted(merged) and len([p for p in full if p.endswith(".jpg")]) == 9
    for name in full:                                   # npz arrays, crops, manifests, reports: same bytes
        assert merged[name] == full[name], name
    lms = load_landmarks(tmp_path / "full" / "landmarks.npz")
    assert lms.success.all() and lms.subjects is None  # dlib finds every rendered face
    # crops are hard links into the shard stores, not second copies
    first = next((tmp_path / "merged" / "crops" / "images").rglob("*.jpg"))
    rel = first.relative_to(tmp_path / "merged" / "crops")
    owner = [s for s in shards if (s / "crops" / rel).is_file()]
    assert len(owner) == 1 and os.path.samefile(first, owner[0] / "crops" / rel)


def test_shard_outputs_record_their_subjects_and_refuse_other_shards(bp4d, tmp_path, capsys) -> None:
    a, b, c = bp4d["subjects"]
    stages(bp4d, tmp_path / "ab", [a, b], "provided")
    stages(bp4d, tmp_path / "c", [c], "provided")
    stages(bp4d, tmp_path / "none", [ABSENT], "provided")
    index = load_index(bp4d["index"])
    lms = load_landmarks(tmp_path / "ab" / "landmarks.npz")
    assert lms.subjects == (a, b) and len(lms.success) == int(index.subject.isin([a, b]).sum())
    empty = load_aligned(tmp_path / "none" / "crops")
    assert empty.subjects == (ABSENT,) and empty.points.shape == (0, 68, 2)
    manifest = json.loads((tmp_path / "none" / "heatmaps" / "manifest.json").read_text())
    assert manifest["frames"] == 0 and manifest["subjects"] == [ABSENT]
    capsys.readouterr()
    # crops of shard c fed with the landmarks of shard ab: refused, naming both subject lists
    assert main(["crops", "--index", str(bp4d["index"]), "--subjects", c, "--no-progress",
                 "--landmarks", str(tmp_path / "ab" / "landmarks.npz"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"subjects {a}, {b}" in err and f"this run: subjects {c}" in err and not (tmp_path / "x").exists()
    # a shard file used as if it covered the whole index
    assert main(["heatmaps", "--index", str(bp4d["index"]), "--no-progress", "--crops", str(tmp_path / "c" / "crops"),
                 "--out", str(tmp_path / "y")]) == 2
    assert "this run: the whole index" in capsys.readouterr().err
    # gather: a missing subject, a subject in two shards, a shard whose files disagree
    assert gather(bp4d, tmp_path / "m", [tmp_path / "ab", tmp_path / "none"]) == 2
    assert f"no shard holds subjects {c}" in capsys.readouterr().err
    assert gather(bp4d, tmp_path / "m", [tmp_path / "ab", tmp_path / "c", tmp_path / "ab"]) == 2
    assert f"both hold subjects {a}, {b}" in capsys.readouterr().err
    (tmp_path / "c" / "landmarks.npz").replace(tmp_path / "c_landmarks.npz")
    os.link(tmp_path / "ab" / "landmarks.npz", tmp_path / "c" / "landmarks.npz")
    assert gather(bp4d, tmp_path / "m", [tmp_path / "ab", tmp_path / "c"]) == 2
    assert "made for different subjects" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()                # nothing written when the check fails
    (tmp_path / "c" / "landmarks.npz").unlink()
    (tmp_path / "c_landmarks.npz").replace(tmp_path / "c" / "landmarks.npz")
    assert gather(bp4d, tmp_path / "m", [tmp_path / "ab", tmp_path / "c", tmp_path / "none"]) == 0
    merged = load_aligned(tmp_path / "m" / "crops", index)
    assert merged.valid.all() and merged.subjects is None


def test_gather_copies_where_links_fail(bp4d, tmp_path, monkeypatch) -> None:
    import errno

    stages(bp4d, tmp_path / "all", list(bp4d["subjects"]), "provided")

    def no_links(src, dst):
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    assert main(["gather", "--index", str(bp4d["index"]), "--shards", str(tmp_path / "all"), "--no-progress",
                 "--out-crops", str(tmp_path / "m")]) == 0
    report = json.loads((tmp_path / "m" / "crops.report.json").read_text())
    assert report["written"] == 9 and report["subjects"] is None
    crops = sorted((tmp_path / "m" / "images").rglob("*.jpg"))
    assert len(crops) == 9 and all(p.stat().st_nlink == 1 for p in crops)
    src = {p.relative_to(tmp_path / "all" / "crops"): p.read_bytes()
           for p in (tmp_path / "all" / "crops" / "images").rglob("*.jpg")}
    assert {p.relative_to(tmp_path / "m"): p.read_bytes() for p in crops} == src
    np.testing.assert_array_equal(load_aligned(tmp_path / "m").points, load_aligned(tmp_path / "all" / "crops").points)
