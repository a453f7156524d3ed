"""The pre-flight check and the frame index at the full published counts, in seconds: a BP4D copy with every
published AU-coded segment (146,847 frames) and a DISFA copy with 27 videos of 4,845 frames (SN010: 4,844)
and their 130,814 decoded frames, whose images are hard links to a few real JPEGs. Also: zero-padded BP4D
frame names index like plain ones, and names that fit neither convention get a message that says so."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from replicas import write_bp4d_csv, write_bp4d_replica, write_disfa_video, write_images

from au_ttt.cli import main
from au_ttt.data.bp4d import read_bp4d
from au_ttt.data.disfa import read_disfa
from au_ttt.data.protocol import (
    BP4D_CSV_AUS,
    BP4D_PART_FRAMES,
    DISFA_AUS,
    DISFA_PART_FRAMES,
    DISFA_PARTS,
    bp4d_segments,
    disfa_label_lines,
)
from au_ttt.data.video import FRAMES_MARKER
from au_ttt.errors import InputError

_HEADER = ",".join(["0", *map(str, BP4D_CSV_AUS)])


def _jpeg(path: Path) -> Path:
    write_images(path.parent, [path.stem], size=(16, 12))
    return path


@pytest.fixture(scope="module")
def bp4d_full(tmp_path_factory) -> Path:
    """Every published segment: one CSV per subject and task (labels alternate 0/1, no 9) and one hard link
    per frame to the subject's JPEG (ext4 allows 65,000 links per file, a subject has at most 4,153 frames)."""
    root = tmp_path_factory.mktemp("bp4d_full") / "BP4D"
    labels = root / "AUCoding" / "AU_OCC"
    labels.mkdir(parents=True)
    for k, (subject, segments) in enumerate(bp4d_segments().items()):
        source = _jpeg(root / "sources" / f"{subject}.jpg")
        for task, (first, n) in segments.items():
            folder = root / subject / task
            folder.mkdir(parents=True)
            row = ",".join(str((j + k) % 2) for j in range(len(BP4D_CSV_AUS)))
            (labels / f"{subject}_{task}.csv").write_text(
                _HEADER + "\n" + "".join(f"{f},{row}\n" for f in range(first, first + n)))
            for f in range(first, first + n):
                os.link(source, folder / f"{f}.jpg")
    shutil.rmtree(root / "sources")
    return root


@pytest.fixture(scope="module")
def disfa_full(tmp_path_factory) -> tuple[Path, Path]:
    """27 label sets and videos at the published lengths (two encoded videos, hard-linked), and the decoded
    frames folder `au-ttt data frames` would write (hard links to a JPEG per subject, a marker each)."""
    base = tmp_path_factory.mktemp("disfa_full")
    root, frames = base / "DISFA", base / "frames"
    lengths = {s: disfa_label_lines(s) for part in DISFA_PARTS.values() for s in part}
    encoded = {n: write_disfa_video(base / f"enc{n}", "SN001", n, size=(16, 12)) for n in set(lengths.values())}
    for subject, n in lengths.items():
        source = _jpeg(base / "sources" / f"{subject}.jpg")   # a file per subject: ext4's link limit
        folder = root / "ActionUnit_Labels" / subject
        folder.mkdir(parents=True)
        text = "".join(f"{t + 1},{t % 6}\n" for t in range(n))
        for au in DISFA_AUS:
            (folder / f"{subject}_au{au}.txt").write_text(text)
        video = root / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi"
        video.parent.mkdir(parents=True, exist_ok=True)
        os.link(encoded[n], video)
        out = frames / subject
        out.mkdir(parents=True)
        for t in range(n):
            os.link(source, out / f"{t}.jpg")
        (out / FRAMES_MARKER).write_text(f'{{"video": "{video}", "frames": {n}, "width": 16, "height": 12}}\n')
    return root, frames


def _check(capsys, *args: str) -> tuple[int, list[str]]:
    code = main(["data", "check", *args, "--no-progress"])
    return code, capsys.readouterr().out.splitlines()


def test_full_bp4d_copy_passes_the_default_check_and_indexes_every_frame(bp4d_full, capsys):
    code, lines = _check(capsys, "--dataset", "bp4d", "--root", str(bp4d_full))
    assert code == 0, lines
    assert not any(ln.startswith(("ERROR", "WARNING")) for ln in lines), lines
    assert "MATCHES the protocol" in "\n".join(lines)
    df, report = read_bp4d(bp4d_full, progress=False)
    assert df.groupby("part").size().to_dict() == BP4D_PART_FRAMES
    assert len(df) == 146_847 and df["subject"].nunique() == 41 and not report.excluded


def test_one_missing_bp4d_segment_is_named_and_breaks_the_part_count(bp4d_full, tmp_path, capsys):
    csv = bp4d_full / "AUCoding" / "AU_OCC" / "F001_T1.csv"
    kept = tmp_path / "kept.csv"
    shutil.move(csv, kept)
    try:
        code, lines = _check(capsys, "--dataset", "bp4d", "--root", str(bp4d_full))
    finally:
        shutil.move(kept, csv)
    assert code == 1
    assert ("ERROR   missing_sequence: F001/T1: no AUCoding/AU_OCC/F001_T1.csv (BP4D has tasks T1-T8 per "
            "subject)") in lines
    assert any(ln.startswith("ERROR   labelled_frames: part 1: 50,078 labelled frames") for ln in lines)  # −553


def test_full_disfa_copy_passes_with_videos_and_decoded_frames(disfa_full, capsys):
    root, frames = disfa_full
    code, lines = _check(capsys, "--dataset", "disfa", "--root", str(root), "--frames", str(frames))
    assert code == 0, lines
    assert not any(ln.startswith(("ERROR", "WARNING")) for ln in lines), lines
    df, report = read_disfa(root, frames, progress=False)
    assert df.groupby("part").size().to_dict() == DISFA_PART_FRAMES
    assert len(df) == 130_814 and not report.excluded


# ------------------------------------------------------------------------------ frame naming conventions
def test_zero_padded_bp4d_names_index_and_check_like_plain_ones(tmp_path, capsys):
    plain, padded = tmp_path / "plain", tmp_path / "padded"
    write_bp4d_replica(plain, subjects=["F001", "M011", "F007"], frames=(8, 9, 2440))
    shutil.copytree(plain, padded)
    for jpg in sorted(padded.glob("*/T1/*.jpg")):
        jpg.rename(jpg.with_name(f"{int(jpg.stem):05d}.jpg"))
    a, _ = read_bp4d(plain, progress=False)
    b, report = read_bp4d(padded, progress=False)
    assert len(b) == len(a) == 9 and not report.excluded
    assert b["image"].tolist()[:3] == ["F001/T1/00008.jpg", "F001/T1/00009.jpg", "F001/T1/02440.jpg"]
    assert (b.drop(columns="image") == a.drop(columns="image")).all().all()
    code, lines = _check(capsys, "--dataset", "bp4d", "--root", str(padded), "--expect", "structure",
                         "--subjects", "F001", "M011", "F007")
    assert code == 0, lines


def test_names_that_fit_no_convention_get_a_message_saying_so(tmp_path, capsys):
    root = tmp_path / "BP4D"
    write_bp4d_replica(root, subjects=["F001"], frames=(8, 9))
    for jpg in sorted(root.glob("F001/T1/*.jpg")):
        jpg.rename(jpg.with_name(f"frame_{jpg.stem}.png"))
    code, lines = _check(capsys, "--dataset", "bp4d", "--root", str(root), "--expect", "structure",
                         "--subjects", "F001")
    assert code == 1
    line = next(ln for ln in lines if ln.startswith("ERROR   missing_images: F001/T1"))
    assert "holds 2 image files named like 'frame_8.png', none named after a labelled frame number" in line
    assert "rename them 8.jpg (the BP4D and ME-GraphAU convention) or zero-padded 00008.jpg" in line
    with pytest.raises(InputError, match=r"frame_8\.png"):
        read_bp4d(root, progress=False)


def test_a_padded_name_never_shadows_the_plain_one(tmp_path):
    root = tmp_path / "BP4D"
    write_bp4d_csv(root, "F001", "T1", (8,), {})
    write_images(root / "F001" / "T1", [8, "0008"])
    df, _ = read_bp4d(root, progress=False)
    assert df["image"].tolist() == ["F001/T1/8.jpg"]
    assert np.array_equal(df["frame"].to_numpy(), [8])
