"""Pieces of `au-ttt predict` that need no model: input expansion, output names, tracking, CSV schema."""

import numpy as np
import pytest

from au_ttt.predict.inputs import Source, expand_inputs
from au_ttt.predict.job import csv_names
from au_ttt.predict.output import FaceRow, columns, format_row
from au_ttt.predict.tracking import IoUTracker, iou_matrix, left_to_right_ids


def test_iou_matrix_hand_computed():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 10]])
    # overlap 5×5 = 25, union 100 + 100 − 25 = 175
    np.testing.assert_allclose(iou_matrix(a, b), [[25 / 175, 0.0, 1.0]])


def test_tracker_keeps_ids_while_boxes_overlap_and_renews_after_a_long_gap():
    t = IoUTracker(iou_threshold=0.3, max_missed=2)
    left, right = np.array([0, 0, 10, 10.0]), np.array([50, 0, 60, 10.0])
    assert t.update([right, left]) == [1, 0]                      # new ids numbered left to right
    assert t.update([left + 1, right - 1]) == [0, 1]              # small moves keep the ids
    assert t.update([right]) == [1]                               # face 0 missed once
    assert t.update([left, right]) == [0, 1]                      # back within max_missed: same id
    for _ in range(3):
        t.update([right])                                         # face 0 missed 3 > 2 times: closed
    assert t.update([left, right]) == [2, 1]


def test_still_image_ids_run_left_to_right():
    boxes = [np.array([300, 0, 350, 50]), np.array([10, 100, 60, 150]), np.array([150, 20, 200, 70])]
    assert left_to_right_ids(boxes) == [2, 0, 1]


def test_expand_inputs_folders_globs_lists_and_missing(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"x")
    (tmp_path / "a" / "notes.md").write_text("not an input")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"x")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "clip.MP4").write_bytes(b"x")
    (tmp_path / "b" / "y.png").write_bytes(b"x")
    (tmp_path / "list.txt").write_text("# my inputs\na/x.jpg\n\nb/y.png\nmissing.jpg\n")
    sources, bad = expand_inputs([str(tmp_path / "a"), str(tmp_path / "b" / "*"), str(tmp_path / "list.txt"),
                                  str(tmp_path / "nothing*.jpg"), str(tmp_path / "gone.png")])
    assert [(s.path.name, s.kind) for s in sources] == [("x.jpg", "image"), ("clip.MP4", "video"), ("y.png", "image")]
    assert {b.name: b.reason for b in bad} == {
        "missing.jpg": "not found", str(tmp_path / "nothing*.jpg"): "the pattern matched no image or video file",
        str(tmp_path / "gone.png"): "not found"}


def test_csv_names_are_unique_and_readable(tmp_path):
    def src(rel):
        return Source(tmp_path / rel, "image", rel)

    names = csv_names([src("s1/img.jpg"), src("s2/img.jpg"), src("s2/img.png"), src("x/predictions.png"),
                       src("solo.jpg")])
    assert names == ["s1__img_jpg", "s2__img_jpg", "s2__img_png", "x__predictions_png", "solo"]
    assert len(set(names)) == len(names)


def test_rows_follow_the_schema_and_a_no_face_row_is_empty():
    aus = (1, 12)
    header = columns(aus)
    assert header[:10] == ["input", "frame", "timestamp", "face_id", "confidence", "success", "face_x", "face_y",
                           "face_w", "face_h"]
    assert header[10] == "x_0" and header[77] == "x_67" and header[78] == "y_0"
    assert header[-4:] == ["AU01_p", "AU12_p", "AU01_c", "AU12_c"]
    thresholds = np.array([0.5, 0.5])
    face = FaceRow("a.jpg", 3, 0.1, 0, 0.99, np.array([10, 20, 40, 60.0]), np.zeros((68, 2)),
                   np.array([0.25, 0.5], np.float32), True)
    cells = format_row(face, thresholds)
    assert len(cells) == len(header)
    assert cells[5] == "1" and cells[6:10] == ["10.0", "20.0", "30.0", "40.0"]
    assert cells[-4:] == ["0.25", "0.5", "0", "1"]                 # 0.5 is at the threshold: present
    empty = format_row(FaceRow("b.jpg", 0, 0.0), thresholds)
    assert empty[3:6] == ["-1", "", "0"] and set(empty[6:]) == {""}


@pytest.mark.parametrize("box", [(100, 50, 180, 150), (0, 0, 40, 44)])
def test_mtcnn_box_maps_to_a_centred_square(box):
    from au_ttt.predict.faces import MTCNN_TO_HOG, mtcnn_fit_box

    l, t, r, b = mtcnn_fit_box(np.array(box, float))
    w, h = box[2] - box[0], box[3] - box[1]
    assert abs((r - l) - (b - t)) <= 1
    assert abs((r - l) - MTCNN_TO_HOG[0] * np.sqrt(w * h)) <= 1
    assert abs((t + b) / 2 - ((box[1] + box[3]) / 2 + MTCNN_TO_HOG[1] * h)) <= 1
