"""F1 per AU (hand-computed, unknown labels excluded), the all-positive floor, cross-domain AU mapping."""

import numpy as np
import pytest

from au_ttt.metrics import all_positive_f1, cross_domain_columns, f1_per_au


def test_f1_per_au_hand_computed():
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    probs = np.array([[0.9, 0.2], [0.4, 0.7], [0.6, 0.5], [0.1, 0.8]])
    # AU a: predictions ≥ 0.5 → [1, 0, 1, 0]; TP 1, FP 1, FN 1 → F1 = 2/(2+1+1) = 0.5
    # AU b: predictions → [0, 1, 1, 1]; TP 2, FP 1, FN 0 → F1 = 4/5 = 0.8
    assert np.allclose(f1_per_au(labels, probs), [0.5, 0.8])


def test_unknown_labels_are_left_out_of_f1():
    labels = np.array([[1], [-1], [0]])
    probs = np.array([[0.9], [0.9], [0.1]])   # the unknown frame would be a false positive if counted
    assert f1_per_au(labels, probs)[0] == 1.0


def test_all_positive_floor():
    labels = np.array([[1, 0], [0, 0], [1, 1], [0, 0]])
    # AU a: precision 2/4, recall 1 → F1 = 2·0.5/(1.5) = 0.6667; AU b: precision 1/4 → F1 = 0.4
    assert np.allclose(all_positive_f1(labels), [2 / 3, 0.4])


def test_cross_domain_mapping_matches_fgnet_indices():
    out_idx, label_idx, aus = cross_domain_columns("bp4d", "disfa")
    assert (out_idx, label_idx, aus) == ([0, 1, 2, 3, 6], [0, 1, 2, 3, 5], (1, 2, 4, 6, 12))
    out_idx, label_idx, _ = cross_domain_columns("disfa", "bp4d")
    assert (out_idx, label_idx) == ([0, 1, 2, 3, 5], [0, 1, 2, 3, 6])
    with pytest.raises(ValueError, match="cross-domain datasets"):
        cross_domain_columns("bp4d", "ck+")


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="must both be"):
        f1_per_au(np.zeros((3, 2)), np.zeros((3, 3)))
