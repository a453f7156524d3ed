"""`au-ttt data check` on tiny BP4D/DISFA format replicas: a complete copy passes, each kind of damage fails
with a line naming what and where, count tolerances turn small differences into warnings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from replicas import (
    BP4D_CSV_AUS,
    disfa_video_path,
    write_bp4d_csv,
    write_bp4d_replica,
    write_disfa_replica,
    write_disfa_video,
)

from au_ttt.cli import main
from au_ttt.data import check
from au_ttt.data.protocol import BP4D_AUS, BP4D_PARTS, DISFA_PARTS
from au_ttt.data.video import extract_disfa_frames


@pytest.fixture(scope="module")
def bp4d_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bp4d") / "BP4D"
    write_bp4d_replica(root)
    return root


@pytest.fixture(scope="module")
def disfa_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("disfa") / "DISFA"
    write_disfa_replica(root)
    return root


@pytest.fixture
def bp4d(bp4d_copy, tmp_path) -> Path:
    """A private copy of the complete replica that a test may damage."""
    return Path(shutil.copytree(bp4d_copy, tmp_path / "BP4D"))


@pytest.fixture
def disfa(disfa_copy, tmp_path) -> Path:
    return Path(shutil.copytree(disfa_copy, tmp_path / "DISFA"))


def _check(capsys, dataset: str, root: Path, *extra: str) -> tuple[int, list[str]]:
    code = main(["data", "check", "--dataset", dataset, "--root", str(root), "--expect", "structure",
                 "--no-progress", *extra])
    return code, capsys.readouterr().out.splitlines()


def _errors(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.startswith("ERROR")]


# --------------------------------------------------------------------------------------------- BP4D
def test_complete_bp4d_replica_passes_with_a_report(bp4d_copy, tmp_path, capsys):
    out = tmp_path / "report.json"
    code, lines = _check(capsys, "bp4d", bp4d_copy, "--out", str(out))
    assert code == 0, lines
    assert _errors(lines) == []
    assert "MATCHES the protocol" in lines[-2]
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["findings"] == []
    assert report["counts"]["subjects"] == 41 and report["counts"]["labelled_frames"] == 82
    assert report["counts"]["images_decoded"] == 82 and report["counts"]["images_missing"] == 0


def test_missing_bp4d_subject_fails_naming_it(bp4d, capsys):
    (bp4d / "AUCoding" / "AU_OCC" / "M017_T1.csv").unlink()
    code, lines = _check(capsys, "bp4d", bp4d)
    assert code == 1
    assert _errors(lines) == ["ERROR   missing_subject: M017 (part 2): no label file AUCoding/AU_OCC/M017_T*.csv"]


def test_missing_au_column_fails_naming_file_and_column(bp4d, capsys):
    columns = [au for au in BP4D_CSV_AUS if au != 14]
    write_bp4d_csv(bp4d, "F007", "T1", (10, 11), {}, columns=columns)
    code, lines = _check(capsys, "bp4d", bp4d)
    assert code == 1
    [line] = _errors(lines)
    assert line.startswith("ERROR   missing_au_column: AUCoding/AU_OCC/F007_T1.csv: no column '14' (AU14)")


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_an_image"])
def test_unreadable_image_fails_naming_the_file(bp4d, capsys, damage):
    image = bp4d / "F015" / "T1" / "11.jpg"
    data = image.read_bytes()
    image.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "not_an_image": b"hello"}[damage])
    code, lines = _check(capsys, "bp4d", bp4d)
    assert code == 1
    [line] = _errors(lines)
    assert line.startswith(f"ERROR   unreadable_image: {image}: ")


def test_sampling_is_deterministic_and_full_decodes_every_image(bp4d, capsys):
    write_bp4d_replica(bp4d, ["F001"], frames=(10, 11, 12, 13, 14))
    (bp4d / "F001" / "T1" / "12.jpg").write_bytes(b"")          # the middle frame
    assert check.sample_positions(5, 2, full=False) == [0, 4]    # first and last
    assert check.sample_positions(5, 3, full=False) == [0, 2, 4]
    assert check.sample_positions(3, 5, full=False) == [0, 1, 2]
    code, lines = _check(capsys, "bp4d", bp4d, "--sample", "2")
    assert code == 0, lines                                      # the damaged frame is not in the sample
    code, lines = _check(capsys, "bp4d", bp4d, "--sample", "2", "--full")
    assert code == 1 and "unreadable_image" in _errors(lines)[0] and "F001/T1/12.jpg" in _errors(lines)[0]


def test_label_values_9_is_a_warning_anything_else_an_error(bp4d, capsys):
    labels = {au: [0, 1] for au in BP4D_CSV_AUS}
    labels[4] = [9, 0]
    write_bp4d_csv(bp4d, "F001", "T1", (10, 11), labels)
    code, lines = _check(capsys, "bp4d", bp4d)
    assert code == 0
    [warning] = [ln for ln in lines if ln.startswith("WARNING")]
    assert warning.startswith("WARNING label_9: AUCoding/AU_OCC/F001_T1.csv: ") and warning.endswith("AU4 in 1 frames")
    labels[6] = [0, 3]
    write_bp4d_csv(bp4d, "F001", "T1", (10, 11), labels)
    code, lines = _check(capsys, "bp4d", bp4d)
    assert code == 1
    [line] = _errors(lines)
    assert line.startswith("ERROR   bad_label_value: AUCoding/AU_OCC/F001_T1.csv frame 11: AU6 is 3;")


def test_missing_images_within_tolerance_warn_beyond_it_fail(bp4d, capsys):
    write_bp4d_replica(bp4d, ["F002"], frames=tuple(range(100, 300)))   # 200 labelled frames
    (bp4d / "F002" / "T1" / "150.jpg").unlink()                         # 1 of 200 = 0.5 %: within tolerance
    code, lines = _check(capsys, "bp4d", bp4d)
    assert code == 0
    assert any(ln.startswith("WARNING missing_images: F002/T1: 1 of 200 labelled frames") for ln in lines)
    (bp4d / "F002" / "T1" / "151.jpg").unlink()                         # 1 %: an error
    code, lines = _check(capsys, "bp4d", bp4d)
    assert code == 1
    assert _errors(lines)[0].startswith("ERROR   missing_images: F002/T1: 2 of 200 labelled frames have no image")


def test_unknown_subject_file_is_an_error(bp4d, capsys):
    write_bp4d_csv(bp4d, "X001", "T1", (1,), {})
    code, lines = _check(capsys, "bp4d", bp4d)
    assert code == 1
    assert _errors(lines)[0].startswith("ERROR   unexpected_file: AUCoding/AU_OCC/X001_T1.csv: ")


def test_published_expectations_compare_tasks_and_frame_counts(bp4d_copy, capsys):
    code = main(["data", "check", "--dataset", "bp4d", "--root", str(bp4d_copy), "--no-progress"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert ("ERROR   missing_sequence: F001/T2: no AUCoding/AU_OCC/F001_T2.csv (BP4D has tasks T1-T8 per "
            "subject)") in lines
    assert ("ERROR   labelled_frames: part 1: 28 labelled frames (AU_OCC rows of the part's subjects), published "
            "50,631 (ME-GraphAU lists); difference -50,603") in lines
    assert sum(ln.startswith("ERROR   missing_sequence: F") or ln.startswith("ERROR   missing_sequence: M")
               for ln in lines) == 20  # --max-lines
    assert "ERROR   missing_sequence: … and 267 more (all of them are in the JSON report)" in lines  # 41 × 7 = 287


def test_count_tolerance_rule():
    assert check.compare_count(1000, 1000, 0.005) is None
    assert check.compare_count(1000, 995, 0.005) == "warning"
    assert check.compare_count(1000, 1005, 0.005) == "warning"
    assert check.compare_count(1000, 994, 0.005) == "error"
    assert check.compare_count(4845, 4844, 0.0) == "error"


# -------------------------------------------------------------------------------------------- DISFA
def test_complete_disfa_replica_passes(disfa_copy, tmp_path, capsys):
    frames = tmp_path / "frames"
    extract_disfa_frames(disfa_copy, frames, subjects=list(DISFA_PARTS[1][:2]), progress=False)
    code, lines = _check(capsys, "disfa", disfa_copy)
    assert code == 0, lines
    assert lines[-1].startswith("disfa at ") and "subjects 27, labelled frames 81" in lines[-1]
    assert "video frames 81" in lines[-1] and "MATCHES" in lines[-1]
    # with --frames, undecoded subjects are errors; the two decoded ones are fine and read back
    code, lines = _check(capsys, "disfa", disfa_copy, "--frames", str(frames))
    assert code == 1
    assert {ln.split(":")[0] for ln in _errors(lines)} == {"ERROR   missing_decoded_frames"}
    assert not any(DISFA_PARTS[1][0] in ln or DISFA_PARTS[1][1] in ln for ln in _errors(lines))


@pytest.mark.parametrize("full", [False, True])
def test_wrong_video_frame_count_fails_naming_the_video(disfa, capsys, full):
    write_disfa_video(disfa, "SN029", 2)                       # labels have 3 lines
    code, lines = _check(capsys, "disfa", disfa, *(["--full"] if full else []))
    assert code == 1
    how = "decoded" if full else "container"
    assert _errors(lines) == [f"ERROR   video_frames: Videos_LeftCamera/LeftVideoSN029_comp.avi: 2 frames ({how}), the "
                              "label files of SN029 have 3 lines: the labels past frame 2 have no image"]
    write_disfa_video(disfa, "SN029", 4)                       # longer: a warning only
    code, lines = _check(capsys, "disfa", disfa)
    assert code == 0 and any(ln.startswith("WARNING video_frames: Videos_LeftCamera/LeftVideoSN029") for ln in lines)


def test_disfa_missing_subject_au_file_and_bad_values(disfa, capsys):
    shutil.rmtree(disfa / "ActionUnit_Labels" / "SN023")
    (disfa / "ActionUnit_Labels" / "SN005" / "SN005_au9.txt").unlink()
    (disfa / "ActionUnit_Labels" / "SN006" / "SN006_au12.txt").write_text("1,0\n2,7\n3,0\n")
    disfa_video_path(disfa, "SN007").write_bytes(b"RIFF\x00garbage")
    code, lines = _check(capsys, "disfa", disfa)
    assert code == 1
    errors = _errors(lines)
    assert "ERROR   missing_subject: SN023 (part 3): no folder ActionUnit_Labels/SN023/" in errors
    assert any(ln.startswith("ERROR   missing_au_file: ActionUnit_Labels/SN005/SN005_au9.txt: no label file for "
                             "AU9") for ln in errors)
    assert any(ln.startswith("ERROR   bad_label_value: ActionUnit_Labels/SN006/SN006_au12.txt: line 2: expected "
                             "'frame,intensity' with intensity 0-5") for ln in errors)
    assert any(ln.startswith("ERROR   unreadable_video: Videos_LeftCamera/LeftVideoSN007_comp.avi: ") for ln in errors)
    assert len(errors) == 4


def test_disfa_published_counts_name_the_subject(disfa_copy, capsys):
    code = main(["data", "check", "--dataset", "disfa", "--root", str(disfa_copy), "--no-progress"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert "ERROR   labelled_frames: SN010: 3 label lines, published 4,844 (ME-GraphAU lists)" in lines
    assert "ERROR   labelled_frames: SN002: 3 label lines, published 4,845 (ME-GraphAU lists)" in lines


# ------------------------------------------------------------------------------------- SynthAU
def test_synthau_in_the_distributed_formats_passes_for_its_subjects(tmp_path, capsys):
    """The checker agrees with SynthAU's format writers (not only with the test replicas)."""
    from au_ttt.data.synth import generate_synthau

    manifest = generate_synthau(tmp_path / "synthau", seed=0, subjects_per_part=1, bp4d_tasks=2, bp4d_frames=3,
                                disfa_frames=4, progress=False)
    for dataset, folder in (("bp4d", "BP4D"), ("disfa", "DISFA")):
        subjects = [s for part in (1, 2, 3) for s in (BP4D_PARTS, DISFA_PARTS)[dataset == "disfa"][part][:1]]
        code, lines = _check(capsys, dataset, tmp_path / "synthau" / folder, "--subjects", *subjects)
        assert code == 0, (manifest, lines)
        assert "subjects 3, " in lines[-1]
        code, lines = _check(capsys, dataset, tmp_path / "synthau" / folder, "--max-lines", "50")  # all expected
        missing = [ln for ln in _errors(lines) if "missing_subject" in ln]
        assert code == 1 and len(missing) == len(_errors(lines)) == (41 if dataset == "bp4d" else 27) - 3


def test_subjects_option_restricts_and_validates(bp4d, capsys):
    (bp4d / "AUCoding" / "AU_OCC" / "M017_T1.csv").unlink()
    code, lines = _check(capsys, "bp4d", bp4d, "--subjects", "F001", "F002")
    assert code == 0 and "subjects 2, sequences 2" in lines[-1]
    assert main(["data", "check", "--dataset", "bp4d", "--root", str(bp4d), "--subjects", "SN001"]) == 2
    assert "--subjects SN001: not published BP4D subjects" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the CLI
def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["data", "check", "--dataset", "bp4d", "--root", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["data", "check", "--dataset", "bp4d", "--root", str(tmp_path), "--sample", "0"]) == 2
    assert main(["data", "check", "--dataset", "bp4d", "--root", str(tmp_path), "--tolerance", "1.5"]) == 2


def test_empty_root_reports_the_missing_label_folder(tmp_path, capsys):
    code, lines = _check(capsys, "bp4d", tmp_path)
    assert code == 1 and _errors(lines)[0].startswith(f"ERROR   missing_label_dir: {tmp_path / 'AUCoding' / 'AU_OCC'}")


def test_published_lists():
    assert len(BP4D_AUS) == 12 and sum(map(len, BP4D_PARTS.values())) == 41
