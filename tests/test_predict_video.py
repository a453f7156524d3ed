"""`au-ttt predict` on videos assembled from real frames: a face that leaves and returns, `--every`, stable
face ids, a phone-style rotation tag, and the overlay video."""

import struct

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from predict_support import make_run

from au_ttt.cli import main
from au_ttt.predict import samples

PRESENT = [True] * 6 + [False] * 4 + [True] * 6          # face, 4 frames of an empty scene, face again


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the tests compare scores across runs


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("video")
    video = samples.face_video(tmp / "clip.avi", PRESENT)
    return tmp, video, make_run(tmp / "run", REPO / "config/config.yaml", "disfa")


def _predict(tmp, video, run, name, *extra) -> pd.DataFrame:
    out = tmp / name
    assert main(["predict", str(video), "--model", str(run), "--out", str(out), "--no-progress", "--device", "cpu",
                 *map(str, extra)]) == 0
    return pd.read_csv(out / "clip.csv")


def test_face_leaves_and_returns_every_frame(setup):
    tmp, video, run = setup
    rows = _predict(tmp, video, run, "all", "--max-missed", 2, "--overlay")
    assert list(rows["frame"]) == list(range(len(PRESENT)))          # one row per frame: one face or none
    assert list(rows["success"]) == [int(p) for p in PRESENT]
    np.testing.assert_allclose(rows["timestamp"], np.arange(len(PRESENT)) / 10.0, atol=1e-3)
    first, second = rows["face_id"][:6], rows["face_id"][10:]
    assert set(first) == {0} and set(second) == {1}                  # stable while present; gap 4 > 2: new id
    assert (rows["face_id"][6:10] == -1).all()
    overlay = cv2.VideoCapture(str(tmp / "all" / "overlay" / "clip.mp4"))
    assert int(overlay.get(cv2.CAP_PROP_FRAME_COUNT)) == len(PRESENT)
    overlay.release()


def test_every_second_frame_keeps_the_id_across_a_short_gap(setup):
    tmp, video, run = setup
    rows = _predict(tmp, video, run, "every2", "--every", 2, "--max-missed", 5, "--threshold", 0.3)
    assert list(rows["frame"]) == list(range(0, len(PRESENT), 2))
    scored = rows[rows["success"] == 1]
    probs = scored[[c for c in rows.columns if c.endswith("_p")]].to_numpy(float)
    decisions = scored[[c for c in rows.columns if c.endswith("_c")]].to_numpy(float)
    np.testing.assert_array_equal(decisions, (probs >= 0.3).astype(float))   # --threshold applies to every AU
    assert list(rows["success"]) == [int(p) for p in PRESENT[::2]]
    assert set(rows["face_id"][rows["success"] == 1]) == {0}           # 2 missed scored frames ≤ 5: same id
    full = _predict(tmp, video, run, "all1")
    cols = [c for c in rows.columns if c.endswith("_p")]
    np.testing.assert_allclose(rows[cols].to_numpy(dtype=float), full[cols].to_numpy(dtype=float)[::2], atol=1e-5)


def _rotate_tag(mp4: bytes, degrees: int) -> bytes:
    """Set the first track header's display matrix (ISO/IEC 14496-12 tkhd) to a clockwise rotation."""
    data = bytearray(mp4)
    k = data.find(b"tkhd")
    version = data[k + 4]
    matrix = k + 4 + 4 + (20 if version == 0 else 32) + 8 + 8
    one = 1 << 16
    a, b = {90: (0, one), 180: (-one, 0), 270: (0, -one)}[degrees]
    data[matrix:matrix + 36] = struct.pack(">9i", a, b, 0, -b, a, 0, 0, 0, 1 << 30)
    return bytes(data)


def test_rotated_phone_video_is_scored_upright(setup):
    """Frames stored sideways with a "rotate 90°" tag are decoded upright: the face is found where it is
    in the upright picture; the same file without the tag shows a sideways face MTCNN does not find."""
    from PIL import Image

    tmp, _, run = setup
    upright = np.ascontiguousarray(cv2.resize(samples.astronaut(), (320, 320))[:, 40:280])   # portrait 240×320
    stored = np.ascontiguousarray(np.rot90(upright, k=1))                 # landscape 320×240, face sideways
    plain = tmp / "sideways" / "clip.mp4"
    plain.parent.mkdir()
    writer = cv2.VideoWriter(str(plain), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for _ in range(3):
        writer.write(np.ascontiguousarray(stored[:, :, ::-1]))
    writer.release()
    tagged = tmp / "tagged" / "clip.mp4"
    tagged.parent.mkdir()
    tagged.write_bytes(_rotate_tag(plain.read_bytes(), 90))
    Image.fromarray(upright).save(tmp / "clip.png")

    still = _predict(tmp, tmp / "clip.png", run, "still")
    rows = _predict(tmp, tagged, run, "rotated")
    assert len(rows) == 3 and (rows["success"] == 1).all()
    for col in ("face_x", "face_y", "face_w", "face_h"):
        assert np.abs(rows[col] - still[col].iloc[0]).max() < 8, col       # same place as in the upright picture
    sideways = _predict(tmp, plain, run, "sideways")
    assert (sideways["success"] == 0).all()
