"""BP4D/DISFA readers, DISFA frame extraction and `au-ttt data` on format replicas with edge cases."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from replicas import (
    BP4D_CSV_AUS,
    write_bp4d_csv,
    write_corrupt_video,
    write_disfa_labels,
    write_disfa_video,
    write_images,
)

from au_ttt.commands import data as data_cmd
from au_ttt.data import frame_index, video
from au_ttt.data.bp4d import read_bp4d
from au_ttt.data.disfa import read_disfa
from au_ttt.data.protocol import BP4D_AUS, DISFA_AUS
from au_ttt.errors import InputError


def _pattern(n: int, aus, shift: int = 0) -> dict[int, list[int]]:
    """Label of frame i, AU j: (i + j + shift) % 2, so every AU has both classes in every sequence."""
    return {au: [(i + j + shift) % 2 for i in range(n)] for j, au in enumerate(aus)}


def _run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    data_cmd.add_arguments(parser)
    return data_cmd.run(parser.parse_args(argv))


# --------------------------------------------------------------------------------------------- BP4D

@pytest.fixture
def bp4d(tmp_path: Path) -> Path:
    root = tmp_path / "BP4D"
    f001 = _pattern(4, BP4D_CSV_AUS)
    f001[2][1] = 9                                        # label 9 -> -1 (F001/T1 frame 2441, AU2)
    write_bp4d_csv(root, "F001", "T1", [2440, 2441, 2442, 2443], f001)
    write_images(root / "F001" / "T1", [2440, 2441, 2442])  # 2443.jpg missing -> excluded
    write_bp4d_csv(root, "M011", "T2", [10, 11], _pattern(2, BP4D_CSV_AUS, shift=1))
    write_images(root / "M011" / "T2", [10, 11])
    no24 = [au for au in BP4D_CSV_AUS if au != 24]        # CSV without the AU24 column -> AU24 = -1
    write_bp4d_csv(root, "F007", "T8", [5, 6], _pattern(2, no24), columns=no24)
    write_images(root / "F007" / "T8", [5, 6])
    return root


def test_bp4d_rows_parts_and_values(bp4d: Path):
    df, report = read_bp4d(bp4d, progress=False)
    cols = [f"AU{a}" for a in BP4D_AUS]
    assert list(df.columns) == [*frame_index.BASE_COLUMNS, *cols]
    assert df[["subject", "sequence", "frame", "part"]].values.tolist() == [
        ["F001", "T1", 2440, 1], ["F001", "T1", 2441, 1], ["F001", "T1", 2442, 1],
        ["M011", "T2", 10, 2], ["M011", "T2", 11, 2], ["F007", "T8", 5, 3], ["F007", "T8", 6, 3]]
    assert df.image.tolist()[:2] == ["F001/T1/2440.jpg", "F001/T1/2441.jpg"]
    assert all(df[c].dtype == np.int8 for c in cols)
    j = {au: BP4D_CSV_AUS.index(au) for au in BP4D_AUS}    # CSV column position decides the pattern
    f001 = df[df.subject == "F001"]
    assert f001.AU1.tolist() == [(i + j[1]) % 2 for i in range(3)]
    assert f001.AU2.tolist() == [(0 + j[2]) % 2, -1, (2 + j[2]) % 2]
    assert df[df.subject == "M011"].AU24.tolist() == [(i + j[24] + 1) % 2 for i in range(2)]
    assert df[df.subject == "F007"].AU24.tolist() == [-1, -1]
    assert df[df.subject == "F007"].AU23.tolist() == [(i + 21) % 2 for i in range(2)]  # 23 is col 21 in no24
    assert report.excluded == {"missing_image": 1}
    assert report.unknown["label_9"] == {"AU2": 1}
    assert report.unknown["missing_label_file"] == {"AU24": 2}


def test_bp4d_unknown_subject_wrong_root_bad_csv(bp4d: Path, tmp_path: Path):
    write_bp4d_csv(bp4d, "F099", "T1", [1, 2, 3], {})
    with pytest.raises(InputError, match=r"F099_T1\.csv.*'F099'.*--allow-unknown-subjects"):
        read_bp4d(bp4d, progress=False)
    df, report = read_bp4d(bp4d, allow_unknown_subjects=True, progress=False)
    assert "F099" not in set(df.subject) and report.excluded["unknown_subject"] == 3
    with pytest.raises(InputError, match="AUCoding/AU_OCC"):
        read_bp4d(tmp_path / "nowhere", progress=False)
    (bp4d / "AUCoding" / "AU_OCC" / "F099_T1.csv").unlink()
    (bp4d / "AUCoding" / "AU_OCC" / "M011_T2.csv").write_text("0,1,2\n10,1,0\n11,7,0\n")
    with pytest.raises(InputError, match=r"M011_T2\.csv: AU 1 has value 7 at frame 11"):
        read_bp4d(bp4d, progress=False)
    (bp4d / "AUCoding" / "AU_OCC" / "M011_T2.csv").write_bytes(b"0,1\n\xff\xfe,\x00\n")
    with pytest.raises(InputError, match=r"M011_T2\.csv"):
        read_bp4d(bp4d, progress=False)


def test_bp4d_cli_writes_index_report_folds(bp4d: Path, tmp_path: Path, capsys):
    out = tmp_path / "res" / "index.parquet"
    assert _run_cli("index", "--dataset", "bp4d", "--root", str(bp4d), "--out", str(out),
                    "--no-progress") == 0
    printed = capsys.readouterr().out
    assert "7 frames" in printed and "missing_image" in printed and "label_9" in printed
    df = frame_index.load_index(out)
    assert len(df) == 7 and df.attrs["image_root"] == str(bp4d.resolve())
    assert (Path(df.attrs["image_root"]) / df.image[0]).is_file()
    report = json.loads((out.parent / "index.report.json").read_text())
    assert report["image_root"] == str(bp4d.resolve()) and report["excluded_frames"] == {"missing_image": 1}
    assert report["frames_per_part"] == {"1": 3, "2": 2, "3": 2}
    folds = json.loads((out.parent / "folds.json").read_text())["folds"]
    assert folds["3"]["megraphau_fold"] == 1 and folds["3"]["fgnet_fold"] == 2
    assert folds["3"]["test_subjects"] == ["F007"] and folds["3"]["train_subjects"] == ["F001", "M011"]
    # AU2 of fold test_part=3: F001 frames 2440, 2442 known (2441 is 9), M011 both; positives by pattern
    j2 = BP4D_CSV_AUS.index(2)
    known = [(0 + j2) % 2, (2 + j2) % 2, (0 + j2 + 1) % 2, (1 + j2 + 1) % 2]
    assert folds["3"]["train_known_labels"]["AU2"] == 4
    assert folds["3"]["train_rates"]["AU2"] == pytest.approx(sum(known) / 4)


# -------------------------------------------------------------------------------------------- DISFA

def _intensities(n: int, shift: int = 0) -> dict[int, list[int]]:
    """Intensity of frame t, AU j: cycles 0,1,2,3 so occurrence (>= 2) is (t + j + shift) % 4 >= 2."""
    return {au: [(t + j + shift) % 4 for t in range(n)] for j, au in enumerate(DISFA_AUS)}


@pytest.fixture
def disfa(tmp_path: Path) -> Path:
    root = tmp_path / "DISFA"
    write_disfa_labels(root, "SN002", _intensities(6))                    # part 1, clean
    write_disfa_video(root, "SN002", 6)
    short = _intensities(6, shift=1)
    short[9] = short[9][:4]                                               # AU9 file 2 lines short
    write_disfa_labels(root, "SN013", short)                              # part 2
    write_disfa_video(root, "SN013", 5)                                   # video 1 frame short
    no26 = _intensities(6, shift=2)
    del no26[26]                                                          # AU26 file missing
    write_disfa_labels(root, "SN003", no26)                               # part 3
    write_disfa_video(root, "SN003", 6)
    return root


def test_disfa_frames_extraction(disfa: Path, tmp_path: Path, capsys, monkeypatch):
    frames = tmp_path / "frames"
    assert _run_cli("frames", "--root", str(disfa), "--out", str(frames), "--no-progress") == 0
    assert "SN013: 5 frames (decoded; label files have 6 lines)" in capsys.readouterr().out
    assert sorted(p.name for p in (frames / "SN002").glob("*.jpg")) == sorted(f"{t}.jpg" for t in range(6))
    import cv2
    means = [cv2.imread(str(frames / "SN002" / f"{t}.jpg")).mean() for t in range(6)]
    np.testing.assert_allclose(means, [20 * t for t in range(6)], atol=4)  # frame t is video frame t
    assert video.read_marker(frames / "SN002")["frames"] == 6
    assert (frames / "SN002").stat().st_mode & 0o777 == frame_index.umask_mode(directory=True)
    again = video.extract_disfa_frames(disfa, frames, progress=False)
    assert again["SN002"] == {"frames": 6, "status": "skipped (already decoded)"}
    # a writer dying mid-video leaves neither the subject folder nor a temp folder; the old one survives
    real, calls = cv2.imwrite, []

    def failing_imwrite(path, img, params=()):
        calls.append(path)
        return len(calls) < 3 and real(path, img, params)

    monkeypatch.setattr(cv2, "imwrite", failing_imwrite)
    with pytest.raises(OSError, match="could not write"):
        video.extract_disfa_frames(disfa, frames, force=True, subjects=["SN002"], progress=False)
    with pytest.raises(OSError, match="could not write"):
        video.extract_disfa_frames(disfa, tmp_path / "fresh", subjects=["SN003"], progress=False)
    assert not (tmp_path / "fresh" / "SN003").exists() and list((tmp_path / "fresh").iterdir()) == []
    assert sorted(p.name for p in frames.iterdir()) == ["SN002", "SN003", "SN013"]
    assert len(list((frames / "SN002").glob("*.jpg"))) == 6


def test_disfa_corrupt_and_missing_video(tmp_path: Path):
    root = tmp_path / "DISFA"
    write_corrupt_video(root, "SN004")
    with pytest.raises(InputError, match=r"LeftVideoSN004_comp\.avi"):
        video.extract_disfa_frames(root, tmp_path / "frames", progress=False)
    write_corrupt_video(root, "SN004", payload=b"")
    with pytest.raises(InputError, match=r"LeftVideoSN004_comp\.avi"):
        video.extract_disfa_frames(root, tmp_path / "frames", progress=False)
    assert not (tmp_path / "frames" / "SN004").exists()
    with pytest.raises(InputError, match="Videos_LeftCamera"):
        video.extract_disfa_frames(tmp_path / "nowhere", tmp_path / "frames", progress=False)


def test_disfa_subject_without_video_is_a_counted_zero_frame_subject(disfa: Path, tmp_path: Path, capsys):
    frames = tmp_path / "frames"
    write_disfa_labels(disfa, "SN004", _intensities(3))                  # labels, but no video (part 1)
    with pytest.raises(InputError, match=r"no left-camera video for SN004.*--missing-ok"):
        _run_cli("frames", "--root", str(disfa), "--out", str(frames), "--subjects", "SN004", "--no-progress")
    assert not (frames / "SN004").exists()
    assert _run_cli("frames", "--root", str(disfa), "--out", str(frames), "--subjects", "SN004", "SN002",
                    "--missing-ok", "--no-progress") == 0
    assert "SN004: 0 frames (no video" in capsys.readouterr().out
    assert video.read_marker(frames / "SN004") == {"video": None, "frames": 0, "status": "no video"}
    video.extract_disfa_frames(disfa, frames, progress=False)            # the other subjects
    df, report = read_disfa(disfa, frames, progress=False)
    assert "SN004" not in set(df.subject) and report.excluded["beyond_video"] == 3 + 1  # + SN013's short video
    write_disfa_video(disfa, "SN004", 3)                                 # the video turns up: decoded now
    again = video.extract_disfa_frames(disfa, frames, subjects=["SN004"], progress=False)
    assert again["SN004"] == {"frames": 3, "status": "decoded"}


def test_disfa_index_rules(disfa: Path, tmp_path: Path):
    frames = tmp_path / "frames"
    video.extract_disfa_frames(disfa, frames, progress=False)
    (frames / "SN003" / "4.jpg").unlink()                                 # a missing frame image
    df, report = read_disfa(disfa, frames, progress=False)
    assert df[["subject", "frame", "part"]].values.tolist() == (
        [["SN002", t, 1] for t in range(6)] + [["SN013", t, 2] for t in range(5)]
        + [["SN003", t, 3] for t in (0, 1, 2, 3, 5)])
    assert df.image.tolist()[:2] == ["SN002/0.jpg", "SN002/1.jpg"] and set(df.sequence) == {"left"}
    sn002 = df[df.subject == "SN002"]
    for j, au in enumerate(DISFA_AUS):
        assert sn002[f"AU{au}"].tolist() == [int((t + j) % 4 >= 2) for t in range(6)], au
    sn013 = df[df.subject == "SN013"]
    j9 = DISFA_AUS.index(9)
    assert sn013.AU9.tolist() == [int((t + j9 + 1) % 4 >= 2) for t in range(4)] + [-1]
    assert df[df.subject == "SN003"].AU26.tolist() == [-1] * 5
    assert report.excluded == {"beyond_video": 1, "missing_image": 1}
    assert report.unknown["short_label_file"] == {"AU9": 2}
    assert report.unknown["missing_label_file"] == {"AU26": 6}


def test_disfa_unknown_subject_wrong_root_bad_file(disfa: Path, tmp_path: Path):
    frames = tmp_path / "frames"
    frames.mkdir()
    write_disfa_labels(disfa, "SN099", _intensities(3))
    with pytest.raises(InputError, match=r"SN099_au1\.txt.*'SN099'"):
        read_disfa(disfa, frames, progress=False)
    with pytest.raises(InputError, match=r"no labelled DISFA frame.*excluded 18 frames: missing_image"):
        read_disfa(disfa, frames, allow_unknown_subjects=True, progress=False)
    with pytest.raises(InputError, match="ActionUnit_Labels"):
        read_disfa(tmp_path / "nowhere", frames, progress=False)
    with pytest.raises(InputError, match="au-ttt data frames"):
        read_disfa(disfa, tmp_path / "no_frames", progress=False)
    (disfa / "ActionUnit_Labels" / "SN002" / "SN002_au4.txt").write_text("1,0\n2,x\n")
    with pytest.raises(InputError, match=r"SN002_au4\.txt:2"):
        read_disfa(disfa, frames, allow_unknown_subjects=True, progress=False)


def test_disfa_cli_index_and_unknown_count(disfa: Path, tmp_path: Path, capsys):
    frames = tmp_path / "frames"
    video.extract_disfa_frames(disfa, frames, progress=False)
    write_disfa_labels(disfa, "SN099", _intensities(3))
    out = tmp_path / "idx" / "index.parquet"
    with pytest.raises(InputError, match="--frames"):
        _run_cli("index", "--dataset", "disfa", "--root", str(disfa), "--out", str(out))
    assert _run_cli("index", "--dataset", "disfa", "--root", str(disfa), "--frames", str(frames),
                    "--out", str(out), "--allow-unknown-subjects", "--no-progress") == 0
    assert "unknown_subject" in capsys.readouterr().out
    report = json.loads(frame_index.report_path(out).read_text())
    assert report["rows"] == 17 and report["excluded_frames"] == {"beyond_video": 1, "unknown_subject": 3}
    assert report["excluded_units"] == {"unknown_subject (subjects)": 1}
    assert report["unknown_labels_per_au"]["AU26"] == 6 and report["unknown_labels_per_au"]["AU9"] == 1
    df = frame_index.load_index(out)
    assert df.attrs["image_root"] == str(frames.resolve()) and df.attrs["dataset"] == "disfa"
    folds = json.loads((out.parent / "folds.json").read_text())
    assert folds["fgnet_fold_to_test_part"] == {"0": 1, "1": 2, "2": 3}
    assert folds["folds"]["1"]["train_subjects"] == ["SN013", "SN003"]
