"""Losses against hand-computed values; class weights against the published BP4D fold-1 weights."""

import math

import numpy as np
import pytest
import torch

from au_ttt.losses import (
    AULoss,
    LossConfig,
    class_weights,
    gamma_from_rates,
    heatmap_mse,
    mdwa_loss,
    wdi_loss,
)

# Two AUs with occurrence rates 0.2 and 0.5: 1/r = (5, 2), Σ = 7, ω = 2·(5/7, 2/7) = (1.428571, 0.571429),
# γ = 1 + r = (1.2, 1.5). Both logits 0 → p = 0.5. Labels y = (1, 0).
RATES = torch.tensor([0.2, 0.5])
OMEGA = torch.tensor([10 / 7, 4 / 7])
LOGITS = torch.zeros(1, 2)
Y = torch.tensor([[1.0, 0.0]])


def test_class_weights_hand_computed():
    assert np.allclose(class_weights([0.2, 0.5]), [10 / 7, 4 / 7])
    assert np.allclose(class_weights([0.3, 0.3, 0.3]), [1, 1, 1])


def test_class_weights_reproduce_published_bp4d_fold1():
    # ME-GraphAU / MDHR: fold-1 training occurrence rates (rounded to 0.1 %) and ME-GraphAU's fold-1 weights
    rates = np.array([18.4, 14.6, 19.8, 44.0, 57.0, 56.7, 54.0, 45.7, 17.5, 34.2, 16.5, 14.8]) / 100
    published = np.array([1.343, 1.690, 1.248, 0.561, 0.433, 0.436, 0.457, 0.541, 1.408, 0.723, 1.493, 1.667])
    assert np.abs(class_weights(rates) - published).max() <= 5e-3


def test_class_weights_reject_a_never_occurring_au():
    with pytest.raises(ValueError, match=r"AU indices \[1\]"):
        class_weights([0.2, 0.0, 0.5])


def test_gamma_is_linear_in_rate():
    assert torch.allclose(gamma_from_rates(torch.tensor([0.0, 0.25, 1.0]), 1.0, 2.0), torch.tensor([1.0, 1.25, 2.0]))


def test_mdwa_hand_computed():
    # AU1 (positive): ω·log p = 1.428571·log 0.5 = −0.990210
    # AU2 (negative): p_m = 0.5 − 0.1 = 0.4; p_m^γ = 0.4^1.5 = 0.252982; log(1 − 0.4) = −0.510826
    #                 ω·p_m^γ·log(1−p_m) = 0.571429·0.252982·(−0.510826) = −0.073846
    # L = −(−0.990210 − 0.073846)/2 = 0.532028
    expected = -(OMEGA[0] * math.log(0.5) + OMEGA[1] * 0.4 ** 1.5 * math.log(0.6)) / 2
    assert abs(expected - 0.532028) < 1e-6
    loss = mdwa_loss(LOGITS, Y, OMEGA, RATES, margin=0.1, gamma_left=1.0, gamma_right=2.0)
    assert loss.item() == pytest.approx(0.532028, abs=1e-6)


def test_mdwa_margin_discards_easy_negatives():
    # p = sigmoid(−2) = 0.1192 < m = 0.15 → p_m = 0 → a negative contributes exactly nothing
    loss = mdwa_loss(torch.tensor([[-2.0]]), torch.tensor([[0.0]]), torch.ones(1), torch.tensor([0.3]), margin=0.15)
    assert loss.item() == 0.0


def test_missing_labels_contribute_nothing():
    logits = torch.tensor([[0.0, 0.0, 3.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, -1.0]])                  # third AU unknown (BP4D's 9)
    omega, rates = torch.cat([OMEGA, torch.tensor([2.5])]), torch.cat([RATES, torch.tensor([0.1])])
    loss = mdwa_loss(logits, targets, omega, rates, margin=0.1)
    assert loss.item() == pytest.approx(0.532028, abs=1e-6)
    loss.backward()
    assert logits.grad[0, 2] == 0.0 and logits.grad[0, 0] != 0.0
    assert wdi_loss(logits.detach(), targets, omega).item() == pytest.approx(0.136508, abs=1e-6)
    mask = torch.tensor([[True, True, False]])                  # the same through an explicit mask
    assert wdi_loss(logits.detach(), torch.tensor([[1.0, 0.0, 1.0]]), omega, mask=mask).item() == pytest.approx(
        0.136508, abs=1e-6)


def test_wdi_hand_computed():
    # AU1: (2·1·0.5 + 1)/(1 + 0.25 + 1) = 0.888889 → 1 − 0.888889 = 0.111111, ·ω1 = 0.158730
    # AU2: (0 + 1)/(0 + 0.25 + 1) = 0.8 → 0.2, ·ω2 = 0.114286;  mean over the 2 AUs = 0.136508
    assert wdi_loss(LOGITS, Y, OMEGA, smooth=1.0).item() == pytest.approx(0.136508, abs=1e-6)


def test_wdi_is_per_sample_not_per_batch():
    # two samples, one AU, ω = 1, p = 0.5: per-sample dice of y=1 is 0.888889, of y=0 is 0.8 → loss 0.155556;
    # a batch-level dice would give (2·0.5+1)/(1+0.5+1) = 0.8 → 0.2.
    loss = wdi_loss(torch.zeros(2, 1), torch.tensor([[1.0], [0.0]]), torch.ones(1))
    assert loss.item() == pytest.approx((0.111111 + 0.2) / 2, abs=1e-6)


def test_heatmap_mse_hand_computed_and_masked():
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[0.0, 2.0], [0.0, 0.0]]]])  # per-map MSE 1.0 and 1.0
    assert heatmap_mse(pred, target).item() == pytest.approx(1.0)
    target[0, 1, 0, 1] = 4.0                                                       # second map now 4.0
    assert heatmap_mse(pred, target).item() == pytest.approx(2.5)
    assert heatmap_mse(pred, target, mask=torch.tensor([[True, False]])).item() == pytest.approx(1.0)


def test_focal_detach_switch_changes_gradient_not_value():
    logits = torch.tensor([[1.0]], requires_grad=True)
    args = (torch.tensor([[0.0]]), torch.ones(1), torch.tensor([0.4]), 0.1)
    a = mdwa_loss(logits, *args, detach_focal=True)
    (ga,) = torch.autograd.grad(a, logits)
    b = mdwa_loss(logits, *args, detach_focal=False)
    (gb,) = torch.autograd.grad(b, logits)
    assert a.item() == pytest.approx(b.item()) and ga.item() != pytest.approx(gb.item())


def test_total_loss_is_the_lambda_weighted_sum():
    cfg = LossConfig(lambda_mdwa=2.0, lambda_wdi=0.5, lambda_mse=3.0)
    crit = AULoss(cfg, "bp4d", RATES.numpy())
    assert crit.margin == 0.1 and AULoss(cfg, "disfa", RATES.numpy()).margin == 0.15
    heat = torch.zeros(1, 2, 2, 2)
    parts = crit(LOGITS, heat, Y, torch.ones(1, 2, 2, 2))
    assert parts["mdwa"].item() == pytest.approx(0.532028, abs=1e-6)
    assert parts["total"].item() == pytest.approx(2.0 * 0.532028 + 0.5 * 0.136508 + 3.0 * 1.0, abs=1e-5)
    with pytest.raises(ValueError, match="margin"):
        AULoss(LossConfig(), "ck+", RATES.numpy())
