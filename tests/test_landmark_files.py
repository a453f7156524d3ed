"""Shipped landmark formats: index maps, 1-based storage, round trips, missing/bad files, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from au_ttt.data import landmark_files as lf
from au_ttt.data.frame_index import umask_mode
from au_ttt.errors import InputError


def path_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(10, 500, size=(n, 68, 2))


def test_index_maps_match_protocol():
    # JAA-Net's scheme: 49-pt i -> 68-pt i+17 (i <= 42), 43..48 -> 61,62,63,65,66,67
    assert lf.IDX49_IN_68.tolist() == [*range(17, 60), 61, 62, 63, 65, 66, 67]
    assert 60 not in lf.IDX66_IN_68 and 64 not in lf.IDX66_IN_68 and len(lf.IDX66_IN_68) == 66
    pts = _points(2)
    back = lf.map49_to_68(lf.select49_from_68(pts))
    assert np.isnan(back[:, :17]).all() and np.isnan(back[:, [60, 64]]).all()
    keep = lf.IDX49_IN_68
    np.testing.assert_array_equal(back[:, keep], pts[:, keep])
    back66 = lf.map66_to_68(lf.select66_from_68(pts[0]))
    assert np.isnan(back66[[60, 64]]).all() and np.isfinite(np.delete(back66, [60, 64], 0)).all()
    # 49-point scheme == 66-point scheme without the jaw (JAA-Net reflect_66 = 1-based 18..66)
    np.testing.assert_array_equal(lf.select49_from_68(pts), lf.select66_from_68(pts)[:, 17:])


def test_bp4d_round_trip_and_raw_layout(tmp_path: Path):
    pts = _points(3)
    pts[1] = np.nan  # a frame BP4D has no landmarks for
    path = lf.write_bp4d_landmarks(tmp_path, "F001", "T1", [2440, 2441, 2442], pts)
    assert path == tmp_path / "2DFeatures" / "F001_T1.mat"
    raw = scipy.io.loadmat(path)["fit"].ravel()
    assert raw["pred"][0].shape == (49, 2)
    # stored 1-based: the first 49-pt point is 68-pt 17, plus one
    np.testing.assert_allclose(raw["pred"][0][0], pts[0, 17] + 1.0)
    got = lf.read_bp4d_landmarks(tmp_path, "F001", "T1")
    assert sorted(got) == [2440, 2442]
    np.testing.assert_allclose(got[2442][lf.IDX49_IN_68], pts[2][lf.IDX49_IN_68])
    assert np.isnan(got[2440][:17]).all()


def test_bp4d_without_frame_field_maps_index_to_frame(tmp_path: Path):
    fit = np.empty((1, 2), dtype=[("pred", object)])
    fit[0, 0] = (np.full((49, 2), 11.0),)
    fit[0, 1] = (np.full((49, 2), 21.0),)
    (tmp_path / "2DFeatures").mkdir()
    scipy.io.savemat(tmp_path / "2DFeatures" / "M010_T6.mat", {"fit": fit})
    got = lf.read_bp4d_landmarks(tmp_path, "M010", "T6")
    assert sorted(got) == [0, 1] and got[1][17, 0] == 20.0


def test_disfa_round_trip_names_and_origin(tmp_path: Path):
    pts = _points(3, seed=1)
    folder = lf.write_disfa_landmarks(tmp_path, "SN001", [0, 1, 2], pts)
    assert folder == tmp_path / "Landmark_Points" / "SN001" / "tmp_frame_lm"
    assert folder.stat().st_mode & 0o777 == umask_mode(directory=True)
    assert path_mode(lf.write_bp4d_landmarks(tmp_path, "F001", "T1", [0], pts[:1])) == umask_mode()
    assert sorted(p.name for p in folder.iterdir()) == [f"SN001_000{k}_lm.mat" for k in range(3)]
    raw = scipy.io.loadmat(folder / "SN001_0001_lm.mat")["pts"]
    assert raw.shape == (66, 2)
    np.testing.assert_allclose(raw[60], pts[1, 61] + 1.0)  # 66-pt 60 is 68-pt 61
    # the alternative shipped name l0XXXX_lm.mat reads as frame XXXX
    scipy.io.savemat(folder / "l00003_lm.mat", {"pts": raw})
    got = lf.read_disfa_landmarks(tmp_path, "SN001")
    assert sorted(got) == [0, 1, 2, 3]
    np.testing.assert_allclose(got[3], got[1], equal_nan=True)
    np.testing.assert_allclose(np.delete(got[2], [60, 64], 0), np.delete(pts[2], [60, 64], 0))


def test_missing_and_bad_files_name_the_file(tmp_path: Path):
    with pytest.raises(InputError, match=r"F001_T1\.mat.*--root"):
        lf.read_bp4d_landmarks(tmp_path, "F001", "T1")
    with pytest.raises(InputError, match="tmp_frame_lm"):
        lf.read_disfa_landmarks(tmp_path, "SN001")
    bad = tmp_path / "2DFeatures" / "F002_T1.mat"
    bad.parent.mkdir()
    bad.write_bytes(b"not a mat file at all")
    with pytest.raises(InputError, match="F002_T1"):
        lf.read_bp4d_landmarks(tmp_path, "F002", "T1")


def test_failed_writes_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pts = _points(3)
    pts[2, 30, 0] = np.nan  # partial NaN inside the 49 points -> refuse, write nothing
    with pytest.raises(ValueError, match="frame 7"):
        lf.write_bp4d_landmarks(tmp_path, "F001", "T1", [5, 6, 7], pts)
    assert not (tmp_path / "2DFeatures" / "F001_T1.mat").exists()

    # the writer dies after half the bytes are out: no file, no temp left behind
    real = scipy.io.savemat

    def dying_savemat(fh, data, **kw):
        real(fh, data, **kw)
        fh.truncate(fh.tell() // 2)
        raise OSError("disk full")

    monkeypatch.setattr(lf.scipy.io, "savemat", dying_savemat)
    with pytest.raises(OSError, match="disk full"):
        lf.write_bp4d_landmarks(tmp_path, "F001", "T1", [5, 6, 7], _points(3))
    assert list((tmp_path / "2DFeatures").iterdir()) == []
    monkeypatch.undo()
    # DISFA: an existing good set survives a failed rewrite, and no temp dirs remain
    good = lf.write_disfa_landmarks(tmp_path, "SN002", [0, 1], _points(2))
    with pytest.raises(ValueError, match="frame 2"):
        lf.write_disfa_landmarks(tmp_path, "SN002", [0, 1, 2], pts)
    assert sorted(p.name for p in good.iterdir()) == ["SN002_0000_lm.mat", "SN002_0001_lm.mat"]
    assert [p.name for p in good.parent.iterdir()] == ["tmp_frame_lm"]
