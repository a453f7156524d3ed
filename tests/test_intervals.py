"""The subject-level bootstrap with known answers: per-subject counts equal the frame-level F1, a constant
shift is found and separated from 0, identical or cancelling models are not, a simulated population's F1 is
covered about 95 % of the time, verdicts and their summary line, several seeds, and the predictions files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from predkit import subjects_of, write_predictions

from au_ttt.errors import InputError
from au_ttt.metrics import f1_per_au
from au_ttt.tables.intervals import (
    FoldCounts,
    Interval,
    NotPaired,
    Resampler,
    Verdict,
    cell,
    difference,
    replicate,
    summary,
)
from au_ttt.tables.uncertainty import ablation_pairs, read_counts

FAST = Resampler(resamples=2000, seed=7)


def frames_from_counts(counts: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (subjects, labels, probabilities) realising per-subject (A, 3) counts tp, fp, fn exactly;
    every AU gets 5 true negatives more than it needs, so frames are never short."""
    subjects, labels, probs = [], [], []
    for s, c in counts.items():
        n = int(c.sum(axis=1).max()) + 5
        lab, prob = np.zeros((n, len(c)), np.int8), np.full((n, len(c)), 0.1)
        for a, (tp, fp, fn) in enumerate(c):
            lab[:tp, a], prob[:tp, a] = 1, 0.9
            prob[tp:tp + fp, a] = 0.8
            lab[tp + fp:tp + fp + fn, a], prob[tp + fp:tp + fp + fn, a] = 1, 0.2
        subjects += [s] * n
        labels.append(lab)
        probs.append(prob)
    return np.array(subjects), np.concatenate(labels), np.concatenate(probs)


def _fold(counts: dict[str, np.ndarray]) -> FoldCounts:
    return FoldCounts.from_frames(*frames_from_counts(counts))


def _f1(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn)


def test_subject_counts_reproduce_frame_level_f1_with_unknown_labels():
    rng = np.random.default_rng(0)
    labels = rng.choice([1, 0, -1], size=(500, 4), p=[0.3, 0.6, 0.1]).astype(np.int8)
    labels[:, 3] = 0  # an AU with no positive label and (below) no positive prediction: F1 0, not NaN
    probs = rng.uniform(size=(500, 4))
    probs[:, 3] = 0.0
    fold = FoldCounts.from_frames(rng.choice(["b", "a", "c"], 500), labels, probs)
    assert fold.subjects == ("a", "b", "c") and fold.tp.shape == (1, 3, 4)
    reps = replicate([fold], FAST, ["AU1", "AU2", "AU4", "AU6"])
    np.testing.assert_allclose(reps.observed[0], f1_per_au(labels, probs), atol=1e-12)
    assert cell(reps, "AU6").point == 0.0


def test_constant_shift_is_found_tight_and_not_zero():
    """B = A with 2 extra true positives (taken from A's misses) on every subject and AU."""
    rng = np.random.default_rng(1)
    folds_a, folds_b, known = [], [], []
    for part in (1, 2, 3):
        a = {s: np.column_stack([rng.integers(30, 90, 2), rng.integers(5, 40, 2), rng.integers(20, 50, 2)])
             for s in subjects_of("bp4d", part, 12)}
        b = {s: c + np.array([2, 0, -2]) for s, c in a.items()}
        folds_a.append(_fold(a))
        folds_b.append(_fold(b))
        tot_a, tot_b = sum(a.values()), sum(b.values())
        known.append(np.mean([_f1(*tot_b[i]) - _f1(*tot_a[i]) for i in range(2)]))
    ra, rb = replicate(folds_a, FAST), replicate(folds_b, FAST)
    diff = difference(rb, ra)
    assert diff.point == pytest.approx(100 * np.mean(known), abs=1e-9)
    assert diff.contains(diff.point) and diff.lo > 0 and diff.excludes_zero
    single = cell(ra)
    assert diff.hi - diff.lo < 0.2 * (single.hi - single.lo)  # pairing cancels the subjects' own spread
    assert cell(rb).contains(cell(ra).point)  # while B's own interval cannot tell them apart


def test_identical_models_differ_by_exactly_zero():
    rng = np.random.default_rng(2)
    counts = {s: np.column_stack([rng.integers(10, 60, 3), rng.integers(0, 30, 3), rng.integers(0, 30, 3)])
              for s in subjects_of("disfa", 1, 8)}
    a, b = replicate([_fold(counts)], FAST), replicate([_fold(dict(counts))], FAST)
    assert difference(a, b) == Interval(0.0, 0.0, 0.0)
    assert not difference(a, b).excludes_zero


def test_differences_that_cancel_across_subjects_are_noise():
    """B is better than A on half the subjects and worse by as much on the other half: totals are equal."""
    up, down = np.array([[50, 10, 10]]), np.array([[40, 10, 20]])
    subjects = subjects_of("bp4d", 2, 10)
    a = {s: (up if i % 2 else down) for i, s in enumerate(subjects)}
    b = {s: (down if i % 2 else up) for i, s in enumerate(subjects)}
    diff = difference(replicate([_fold(b)], FAST), replicate([_fold(a)], FAST))
    assert diff.point == pytest.approx(0.0, abs=1e-12)
    assert diff.lo < 0 < diff.hi and diff.hi - diff.lo > 1.0  # not degenerate: the subjects do differ
    assert not diff.excludes_zero


def test_unpaired_rows_are_refused():
    one = replicate([_fold({"S1": np.array([[5, 1, 1]]), "S2": np.array([[4, 2, 1]])})], FAST)
    other = replicate([_fold({"S1": np.array([[5, 1, 1]]), "S3": np.array([[4, 2, 1]])})], FAST)
    with pytest.raises(NotPaired):
        difference(one, other)


def test_draws_depend_only_on_seed_and_subjects():
    subjects = tuple(subjects_of("bp4d", 3, 5))
    w = FAST.weights(subjects)
    assert w.shape == (2000, 5) and (w.sum(axis=1) == 5).all()
    assert np.array_equal(w, Resampler(2000, 7).weights(subjects))
    assert not np.array_equal(w, Resampler(2000, 8).weights(subjects))


def _population_fold(rng: np.random.Generator, n_subjects: int, params: list[tuple]) -> FoldCounts:
    """Subjects drawn from a known population: per AU base rate, sensitivity and false-positive rate are
    Beta-distributed per subject, frames per subject uniform in [200, 600)."""
    tp, fp, fn = (np.zeros((1, n_subjects, len(params)), np.int64) for _ in range(3))
    for s in range(n_subjects):
        n = rng.integers(200, 600)
        for a, (rate, sens, fpr) in enumerate(params):
            pos = rng.binomial(n, rng.beta(*rate))
            hit = rng.binomial(pos, rng.beta(*sens))
            tp[0, s, a], fn[0, s, a], fp[0, s, a] = hit, pos - hit, rng.binomial(n - pos, rng.beta(*fpr))
    return FoldCounts(tuple(f"S{s:02d}" for s in range(n_subjects)), tp, fp, fn)


def _coverage(subjects_per_fold: int, datasets: int = 200) -> float:
    """Share of simulated 3-fold datasets whose interval contains the population's mean F1."""
    params = [((2, 6), (7, 3), (1, 9)), ((1, 9), (5, 5), (1, 19)), ((4, 4), (8, 2), (2, 8))]
    mean = [(r[0] / sum(r), s[0] / sum(s), f[0] / sum(f)) for r, s, f in params]
    # F1 of the expected counts (frames, rate, sensitivity, fpr independent): the population's F1 per AU
    truth = 100 * np.mean([_f1(p * se, (1 - p) * fpr, p * (1 - se)) for p, se, fpr in mean])
    rng = np.random.default_rng(2025)
    hits = sum(cell(replicate([_population_fold(rng, subjects_per_fold, params) for _ in range(3)], FAST))
               .contains(truth) for _ in range(datasets))
    return hits / datasets


def test_interval_covers_the_population_f1_about_95_percent():
    assert 0.90 <= _coverage(14) <= 0.99  # BP4D's ~14 test subjects per fold; nominal 0.95 (seeded: 0.92)
    assert _coverage(4) < 0.85  # SynthAU's 4 per fold: too narrow (seeded: 0.735), as the table notes warn


def test_several_seeds_average_and_report_their_spread():
    rng = np.random.default_rng(3)
    subjects = subjects_of("bp4d", 1, 6)
    seeds = [_fold({s: np.column_stack([rng.integers(20, 60, 2), rng.integers(5, 20, 2), rng.integers(5, 20, 2)])
                    for s in subjects}) for _ in range(2)]
    both = replicate([FoldCounts.stack_seeds(seeds)], FAST)
    one, two = cell(replicate([seeds[0]], FAST)), cell(replicate([seeds[1]], FAST))
    iv = cell(both)
    assert iv.seeds == 2 and iv.point == pytest.approx((one.point + two.point) / 2)
    assert iv.seed_sd == pytest.approx(abs(one.point - two.point) / np.sqrt(2))
    assert one.seed_sd is None
    from au_ttt.tables.render import fmt_cell

    assert fmt_cell({"Avg.": 58.62, "Avg. lo": 54.1, "Avg. hi": 62.94, "Avg. seed sd": 0.8}, "Avg.") == \
        "58.6 [54.1, 62.9] (seed sd 0.8)"


def test_verdicts_and_summary():
    ours = Interval(60.0, 58.0, 62.0)
    inside, outside = Verdict("Table I BP4D", 61.0, ours), Verdict("Table I DISFA", 65.0, ours)
    assert inside.reproduced and not outside.reproduced
    assert outside.difference == Interval(-5.0, -7.0, -3.0)
    assert Verdict("edge", 62.0, ours).reproduced  # the bounds belong to the interval
    assert summary([inside, outside]) == "1 of 2 cells reproduced"
    assert summary([]) == "0 of 0 cells reproduced"


def test_ablation_pairs_are_each_row_vs_above_and_vs_baseline_once():
    assert ablation_pairs(["baseline", "a", "b", "control"]) == [
        ("a", "baseline", "row above and baseline"), ("b", "a", "row above"), ("b", "baseline", "baseline"),
        ("control", "b", "row above"), ("control", "baseline", "baseline")]


def test_predictions_files_old_or_inconsistent_are_clear_errors(tmp_path):
    f1 = {"AU1": 0.6, "AU2": 0.5}
    write_predictions(tmp_path, (1, 2), f1, ["S1", "S2", "S3"])
    assert read_counts(tmp_path, (1, 2), f1, "rerun it").subjects == ("S1", "S2", "S3")
    with pytest.raises(InputError, match=r"AU2 F1 from the per-frame probabilities is 0\.500000, metrics\.json says "
                                         r"0\.550000.*rerun it"):
        read_counts(tmp_path, (1, 2), {"AU1": 0.6, "AU2": 0.55}, "rerun it")
    old = pd.read_parquet(tmp_path / "predictions.parquet").drop(columns="subject")
    old.to_parquet(tmp_path / "predictions.parquet")
    with pytest.raises(InputError, match=r"has no `subject` column.*rerun it"):
        read_counts(tmp_path, (1, 2), f1, "rerun it")
    with pytest.raises(InputError, match=r"predictions\.parquet: not found"):
        read_counts(tmp_path / "nowhere", (1, 2), f1, "rerun it")


def test_writer_records_each_frames_subject(tmp_path):
    """The contract with `au-ttt train`/`evaluate`: predictions.parquet carries the subject of every row."""
    from au_ttt.train.evaluate import write_predictions as write

    dataset = SimpleNamespace(rows=np.array([4, 7, 9]), subjects=np.array(["F001", "F001", "M002"]))
    result = {"rows": np.array([9, 4, 7]), "probs": np.array([[0.9], [0.2], [0.7]]),
              "labels": np.array([[1], [1], [0]], np.int8)}
    write(tmp_path / "predictions.parquet", dataset, result, (1,))
    frame = pd.read_parquet(tmp_path / "predictions.parquet")
    assert list(frame["subject"]) == ["M002", "F001", "F001"] and list(frame["row"]) == [9, 4, 7]
    counts = read_counts(tmp_path, (1,), {"AU1": 0.5}, "x")  # tp 1 (M002); fp 1, fn 1 (F001)
    assert counts.subjects == ("F001", "M002")
    assert json.dumps(counts.tp[0].tolist()) == "[[0], [1]]"
