"""Landmark backends (dlib, face_alignment with random local weights, provided), the landmark file, NME."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skimage.data

from au_ttt.data.landmarks import (
    FAN_WEIGHTS,
    S3FD_WEIGHTS,
    DlibBackend,
    FaceAlignmentBackend,
    LandmarkSet,
    compare_landmarks,
    index_hash,
    load_landmarks,
    provided_landmarks,
    run_backend,
    save_landmarks,
)
from au_ttt.errors import InputError


def tiny_index(images: list[str], dataset: str = "bp4d", subject: str = "F001", sequence: str = "T1",
               frames: list[int] | None = None) -> pd.DataFrame:
    frames = frames if frames is not None else list(range(len(images)))
    return pd.DataFrame({"dataset": dataset, "subject": subject, "sequence": sequence, "frame": frames,
                         "image": images, "part": 1, "AU1": 0})


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


def test_dlib_finds_the_astronaut_face(astronaut) -> None:
    res = DlibBackend(upsample=1)(astronaut)
    assert res.success and res.score > 0.5          # the mission-patch false positive scores 0.12
    assert res.points.shape == (68, 2) and res.points.dtype == np.float32
    # face box about x 175–265, y 75–170 (checked by eye on the picture); the chin reaches a little below
    assert res.points[:, 0].min() > 165 and res.points[:, 0].max() < 280
    assert res.points[:, 1].min() > 70 and res.points[:, 1].max() < 185
    assert res.points[36, 0] < res.points[45, 0]    # image-left eye corner first (iBUG order)


def test_dlib_reports_no_face_as_failure() -> None:
    res = DlibBackend(upsample=0)(np.full((120, 120, 3), 128, np.uint8))
    assert not res.success and np.isnan(res.points).all() and res.score == 0.0


@pytest.fixture(scope="module")
def random_fan_home(tmp_path_factory):
    """A TORCH_HOME holding RANDOM-init FAN(4) and S3FD weights under face_alignment's file names."""
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    home = tmp_path_factory.mktemp("torch_home")
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), ckpt / FAN_WEIGHTS)
    torch.save(s3fd().state_dict(), ckpt / S3FD_WEIGHTS)
    return home


def test_face_alignment_loads_local_weights_offline(random_fan_home, astronaut, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(random_fan_home))
    FaceAlignmentBackend(detector="sfd", flip_input=False)          # both files found, nothing downloaded
    backend = FaceAlignmentBackend(detector="dlib", flip_input=False)
    res = backend(astronaut)
    assert res.success and res.points.shape == (68, 2) and np.isfinite(res.points).all()
    assert res.score == pytest.approx(1.164, abs=0.01)             # the dlib HOG box score


def test_face_alignment_missing_weights_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(InputError) as err:
        FaceAlignmentBackend(detector="sfd")
    msg = str(err.value)
    assert FAN_WEIGHTS in msg and S3FD_WEIGHTS in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert not (tmp_path / "hub" / "checkpoints").exists()          # no download was attempted
    with pytest.raises(InputError) as err:
        FaceAlignmentBackend(detector="dlib")
    assert FAN_WEIGHTS in str(err.value) and S3FD_WEIGHTS not in str(err.value)


def write_bad_images(folder) -> list[str]:
    """good.jpg, then a missing, an empty, a truncated and a non-image file (in that order)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    _, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    (folder / "good.jpg").write_bytes(buf.tobytes())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "cut.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    (folder / "text.jpg").write_bytes(b"not a jpeg at all")
    return ["ok/good.jpg", "ok/absent.jpg", "ok/empty.jpg", "ok/cut.jpg", "ok/text.jpg"]


def test_bad_images_are_named_exclusions_not_a_stop(tmp_path) -> None:
    from au_ttt.data.landmarks import FrameLandmarks, landmarks_report

    images = write_bad_images(tmp_path / "ok")
    index = tiny_index(images)
    seen = []

    def backend(img):
        seen.append(img.shape)
        return FrameLandmarks(np.zeros((68, 2), np.float32), 1.0, True)

    lms = run_backend(index, tmp_path, backend, "dummy", progress=False)
    assert seen == [(40, 48, 3)]                                      # only the good image reached it
    assert lms.success.tolist() == [True, False, False, False, False]
    assert lms.image_error.tolist() == [0, 1, 2, 3, 4]                # missing, empty, truncated, not an image
    report = landmarks_report(lms, index)
    assert report["bad_images"] == 4 and report["no_face"] == 0 and report["detected"] == 1
    assert report["bad_images_by_reason"] == {"missing": 1, "empty": 1, "truncated": 1, "not_an_image": 1}
    assert report["bad_image_frames"] == [{"image": "ok/absent.jpg", "reason": "missing"},
                                          {"image": "ok/empty.jpg", "reason": "empty"},
                                          {"image": "ok/cut.jpg", "reason": "truncated"},
                                          {"image": "ok/text.jpg", "reason": "not_an_image"}]
    save_landmarks(tmp_path / "lm.npz", lms)                          # the codes survive the file
    assert load_landmarks(tmp_path / "lm.npz", index).image_error.tolist() == [0, 1, 2, 3, 4]


def test_landmark_file_round_trip_and_stale_index(tmp_path) -> None:
    index = tiny_index(["a.jpg", "b.jpg"])
    pts = np.arange(2 * 68 * 2, dtype=np.float32).reshape(2, 68, 2)
    score, ok = np.array([0.9, 0.0], np.float32), np.array([True, False])
    lms = LandmarkSet(pts, score, ok, index_hash(index), "dlib")
    save_landmarks(tmp_path / "lm.npz", lms)
    back = load_landmarks(tmp_path / "lm.npz", index)
    np.testing.assert_array_equal(back.points, pts)
    assert back.success.tolist() == [True, False] and back.backend == "dlib"
    assert back.report()["detection_rate"] == 0.5
    other = tiny_index(["a.jpg", "c.jpg"])
    with pytest.raises(InputError, match="another frame index or shard"):
        load_landmarks(tmp_path / "lm.npz", other)


def test_nme_normalised_by_outer_eye_corners() -> None:
    index = tiny_index(["a.jpg", "b.jpg", "c.jpg"])
    ref = np.zeros((3, 68, 2), np.float32)
    ref[:, :, 0] = np.linspace(0, 100, 68)
    ref[:, 36], ref[:, 45] = (10, 50), (110, 50)                    # outer corners 100 px apart
    pred = ref + np.array([3, 4], np.float32)                        # every point off by 5 px
    h = index_hash(index)
    r = compare_landmarks(LandmarkSet(pred, np.ones(3, np.float32), np.array([True, True, False]), h, "x"),
                          LandmarkSet(ref, np.ones(3, np.float32), np.ones(3, bool), h, "provided"))
    assert r["frames_with_reference"] == 3 and r["detected"] == 2
    assert r["detection_rate"] == pytest.approx(2 / 3)
    assert r["nme_mean"] == pytest.approx(0.05, rel=1e-5)            # 5 / 100


def test_provided_backend_reads_bp4d_files(tmp_path) -> None:
    from au_ttt.data.landmark_files import write_bp4d_landmarks

    rng = np.random.default_rng(1)
    pts = rng.uniform(50, 200, (2, 68, 2))
    write_bp4d_landmarks(tmp_path, "F001", "T1", [10, 11], pts)
    index = tiny_index(["F001/T1/10.jpg", "F001/T1/11.jpg", "F001/T1/12.jpg"], frames=[10, 11, 12])
    lms = provided_landmarks(index, tmp_path, progress=False)
    assert lms.success.tolist() == [True, True, False]                # frame 12 has no landmarks
    np.testing.assert_allclose(lms.points[0, 17:60], pts[0, 17:60], atol=1e-5)
    assert np.isnan(lms.points[0, :17]).all() and np.isnan(lms.points[0, [60, 64]]).all()  # 49-pt scheme


def test_process_pool_gives_the_same_rows_in_order(tmp_path, astronaut) -> None:
    import cv2

    from au_ttt.data.landmarks import LandmarkConfig, detect_index

    cv2.imwrite(str(tmp_path / "face.png"), astronaut[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((100, 100, 3), 90, np.uint8))
    bad = write_bad_images(tmp_path / "ok")[1:]
    index = tiny_index(["face.png", "blank.png", *bad, "face.png"])
    cfg = LandmarkConfig(backend="dlib", dlib_upsample=0)
    serial = detect_index(index, tmp_path, cfg, workers=0, progress=False)
    pooled = detect_index(index, tmp_path, cfg, workers=2, progress=False, chunk=2)
    assert pooled.success.tolist() == [True, False, False, False, False, False, True] == serial.success.tolist()
    assert pooled.image_error.tolist() == [0, 0, 1, 2, 3, 4, 0] == serial.image_error.tolist()
    np.testing.assert_array_equal(pooled.points, serial.points)
    assert pooled.index_hash == serial.index_hash == index_hash(index)
    assert pooled.settings == serial.settings and '"backend": "dlib"' in pooled.settings
