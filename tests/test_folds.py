"""Folds named by test part: published subject lists, rates/weights (hand-computed and published), writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from au_ttt.data import frame_index as fi
from au_ttt.data.protocol import AUS, PARTS, au_columns
from au_ttt.errors import InputError

# (ME-GraphAU data/BP4D/list/BP4D_weight_fold1.txt; rates from MDHR fold-1 train labels)
BP4D_FOLD1_RATES_PCT = [18.4, 14.6, 19.8, 44.0, 57.0, 56.7, 54.0, 45.7, 17.5, 34.2, 16.5, 14.8]
BP4D_FOLD1_WEIGHTS = [1.343, 1.690, 1.248, 0.561, 0.433, 0.436, 0.457, 0.541, 1.408, 0.723, 1.493, 1.667]


def _index(dataset: str, frames_per_subject: int = 4) -> pd.DataFrame:
    """A synthetic index with every published subject; AU j of frame i is (i + j) % 2."""
    rows = []
    for part, subjects in PARTS[dataset].items():
        for s in subjects:
            for i in range(frames_per_subject):
                labels = {c: (i + j) % 2 for j, c in enumerate(au_columns(dataset))}
                rows.append({"subject": s, "sequence": "T1", "frame": i, "image": f"{s}/T1/{i}.jpg",
                             "part": part, **labels})
    return fi.finalize_index([pd.DataFrame(rows)], dataset)


@pytest.mark.parametrize("dataset", ["bp4d", "disfa"])
def test_folds_are_subject_exclusive_and_published(dataset: str):
    index = _index(dataset)
    summary = fi.fold_summary(index, dataset)
    all_subjects = {s for p in PARTS[dataset].values() for s in p}
    assert len(all_subjects) == {"bp4d": 41, "disfa": 27}[dataset]
    for test_part in (1, 2, 3):
        train, test = fi.fold_split(index, test_part)
        assert not set(train.subject) & set(test.subject)
        assert set(train.subject) | set(test.subject) == all_subjects
        fold = summary["folds"][str(test_part)]
        assert fold["test_subjects"] == list(PARTS[dataset][test_part])
        assert set(fold["train_subjects"]) == all_subjects - set(PARTS[dataset][test_part])
        assert fold["test_frames"] == 4 * len(PARTS[dataset][test_part]) == len(test)
        assert fold["missing_published_subjects"] == []
    # ME-GraphAU fold 1 tests part 3 (F004… group); FG-Net fold 0 tests part 1
    assert summary["folds"]["3"]["megraphau_fold"] == 1 and summary["folds"]["1"]["fgnet_fold"] == 0
    if dataset == "bp4d":
        assert "F004" in summary["folds"]["3"]["test_subjects"]


def test_occurrence_rates_ignore_unknown_and_weights_by_hand():
    y = np.array([[1, 0, -1],
                  [0, 0, 1],
                  [1, 1, 1],
                  [-1, 0, 0]])
    np.testing.assert_allclose(fi.occurrence_rates(y), [2 / 3, 1 / 4, 2 / 3])
    df = pd.DataFrame(y, columns=["AU1", "AU2", "AU4"]).assign(subject="F001")
    np.testing.assert_allclose(fi.occurrence_rates(df), [2 / 3, 1 / 4, 2 / 3])
    # rates (0.5, 0.25, 0.2): 1/r = (2, 4, 5), sum 11 -> w = 3 * (2, 4, 5) / 11
    np.testing.assert_allclose(fi.class_weights(np.array([0.5, 0.25, 0.2])), [6 / 11, 12 / 11, 15 / 11])
    assert np.isnan(fi.occurrence_rates(np.array([[-1], [-1]]))[0])


def test_published_bp4d_fold1_rates_give_published_weights():
    w = fi.class_weights(np.array(BP4D_FOLD1_RATES_PCT) / 100)
    np.testing.assert_allclose(w, BP4D_FOLD1_WEIGHTS, atol=5e-3)
    assert w.mean() == pytest.approx(1.0)


def test_zero_rate_names_au_and_fold(tmp_path: Path):
    with pytest.raises(InputError, match=r"AU4 in the training parts of fold 2"):
        fi.class_weights(np.array([0.3, 0.0]), ["AU1", "AU4"], "fold 2")
    with pytest.raises(InputError, match=r"AU index 0"):
        fi.class_weights(np.array([np.nan, 0.5]))
    index = _index("disfa")
    index.loc[index.part != 3, "AU25"] = 0                      # AU25 never occurs in parts 1+2
    with pytest.raises(InputError, match=r"AU25 .*test_part=3 \(ME-GraphAU fold 1\)"):
        fi.fold_summary(index, "disfa")
    # the index is still written; the fold records the error, the report warns
    out = tmp_path / "idx" / "index.parquet"
    report = fi.write_index(index, out, tmp_path, fi.IndexReport("disfa"), {})
    folds = json.loads((out.parent / "folds.json").read_text())["folds"]
    assert folds["3"]["class_weights"] is None and "AU25" in folds["3"]["class_weight_error"]
    assert folds["3"]["train_rates"]["AU25"] == 0.0 and folds["1"]["class_weights"] is not None
    assert len(report["warnings"]) == 1 and "AU25" in report["warnings"][0]


def test_write_load_round_trip_and_atomic_failure(tmp_path: Path, monkeypatch):
    index = _index("bp4d", frames_per_subject=2)
    index.loc[0, "AU1"] = -1
    out = tmp_path / "res" / "bp4d.parquet"
    report = fi.write_index(index, out, tmp_path / "imgs", fi.IndexReport("bp4d"), {"label_root": "/x"})
    assert report["rows"] == 82 and report["frames_per_part"] == {"1": 28, "2": 28, "3": 26}
    assert sorted(p.name for p in out.parent.iterdir()) == ["bp4d.parquet", "bp4d.report.json", "folds.json"]
    assert all(p.stat().st_mode & 0o777 == fi.umask_mode() for p in out.parent.iterdir())  # not 0600
    back = fi.load_index(out)
    pd.testing.assert_frame_equal(back, index)
    assert back.attrs["image_root"] == str((tmp_path / "imgs").resolve())
    assert back.attrs["aus"] == list(AUS["bp4d"])
    folds = json.loads((out.parent / "folds.json").read_text())
    assert folds["folds"]["1"]["train_known_labels"]["AU1"] == 54  # 28 + 26 frames, none unknown in parts 2+3
    train = fi.fold_split(index, 2)[0]
    assert folds["folds"]["2"]["train_known_labels"]["AU1"] == len(train) - 1
    # the parquet writer dies midway: no index, no temp file, old outputs untouched
    import pyarrow.parquet as pq

    before = out.read_bytes()

    def dying_write(table, where, **kw):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", dying_write)
    with pytest.raises(OSError, match="disk full"):
        fi.write_index(index, tmp_path / "new" / "i.parquet", tmp_path, fi.IndexReport("bp4d"), {})
    assert list((tmp_path / "new").iterdir()) == []
    assert out.read_bytes() == before
    with pytest.raises(InputError, match="au-ttt data index"):
        fi.load_index(tmp_path / "missing.parquet")
