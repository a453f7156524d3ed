"""AU-TTT losses: MDWA (eq. 8), weighted dice WDI (eq. 9), heatmap MSE (eq. 10) and their sum (eq. 11).

Conventions (the paper's symbols; the source of each is named):

* ``r_i`` is the occurrence rate of AU i in the TRAINING fold; ω_i = N·(1/r_i)/Σ_j(1/r_j) (ME-GraphAU /
  JAA-Net weights), so the weights average to 1.
* p_i = sigmoid(logit_i). MDWA negatives use p_m = max(p − m, 0) (ASL's probability margin) and the
  focusing weight p_m^γ_i with γ_i = B_L + (B_R − B_L)·r_i. The focusing weight is detached by default,
  as ME-GraphAU's WA loss (the base of MDWA) does; ``detach_focal`` switches it.
* Labels are 1 / 0 / missing. Missing entries (BP4D's 9, stored as -1 in the index) are masked out of every
  loss: each loss is the ω-weighted sum over valid (sample, AU) entries divided by the number of valid
  entries, which equals the paper's (1/N)Σ_i … averaged over the batch when nothing is missing.
* WDI is the per-sample dice of JAA-Net's original Caffe layer (smooth ε = 1), not the batch-level port.
* Heatmap MSE is the mean squared error per AU map (FG-Net: nn.MSELoss per channel, averaged over AUs);
  maps of AUs with a missing label are excluded.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from au_ttt.loss_config import LossConfig

__all__ = [
    "AULoss", "LossConfig", "class_weights", "gamma_from_rates", "heatmap_mse", "mdwa_loss", "wdi_loss",
]

LOG_EPS = 1e-8  # log clamp of ME-GraphAU's WA loss and ASL


def class_weights(rates: np.ndarray | Tensor) -> np.ndarray:
    """ω_i = N·(1/r_i)/Σ_j(1/r_j) from occurrence rates r (fractions in (0, 1])."""
    r = np.asarray(rates, dtype=np.float64)
    if r.ndim != 1 or np.any(r <= 0) or np.any(r > 1):
        bad = [i for i, v in enumerate(np.atleast_1d(r)) if not 0 < v <= 1]
        raise ValueError(f"occurrence rates must lie in (0, 1]; AU indices {bad} do not (an AU that never occurs "
                         "in the training fold cannot be weighted)")
    inv = 1.0 / r
    return len(r) * inv / inv.sum()


def gamma_from_rates(rates: Tensor, left: float, right: float) -> Tensor:
    """γ_i = B_L + (B_R − B_L)·r_i (eq. 8)."""
    return left + (right - left) * rates


def _valid(targets: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """(0/1 float targets with missing set to 0, float validity mask). Missing = mask False or target < 0."""
    valid = targets >= 0 if mask is None else mask.bool() & (targets >= 0)
    return torch.where(valid, targets, torch.zeros_like(targets)).float(), valid.float()


def _masked_mean(per_entry: Tensor, valid: Tensor) -> Tensor:
    return (per_entry * valid).sum() / valid.sum().clamp_min(1.0)


def mdwa_loss(logits: Tensor, targets: Tensor, weights: Tensor, rates: Tensor, margin: float,
              gamma_left: float = 1.0, gamma_right: float = 2.0, mask: Tensor | None = None,
              detach_focal: bool = True) -> Tensor:
    """Margin-truncated difficulty-aware weighted asymmetric loss, eq. 8.

    Args:
        logits: (B, N) AU logits. targets: (B, N) 1/0, or -1 for missing. weights, rates: (N,) ω and r.
        margin: m. mask: optional (B, N) bool, False = missing.
    """
    y, valid = _valid(targets, mask)
    p = torch.sigmoid(logits.float())
    p_m = torch.clamp(p - margin, min=0.0)
    gamma = gamma_from_rates(rates.to(p), gamma_left, gamma_right)
    focal = p_m.detach() ** gamma if detach_focal else p_m ** gamma
    pos = y * torch.log(p.clamp_min(LOG_EPS))
    neg = (1 - y) * focal * torch.log((1 - p_m).clamp_min(LOG_EPS))
    return _masked_mean(-weights.to(p) * (pos + neg), valid)


def wdi_loss(logits: Tensor, targets: Tensor, weights: Tensor, smooth: float = 1.0,
             mask: Tensor | None = None) -> Tensor:
    """Weighted multi-label dice, eq. 9, per sample: ω_i (1 − (2 y p + ε)/(y² + p² + ε))."""
    y, valid = _valid(targets, mask)
    p = torch.sigmoid(logits.float())
    dice = (2 * y * p + smooth) / (y * y + p * p + smooth)
    return _masked_mean(weights.to(p) * (1 - dice), valid)


def heatmap_mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Eq. 10: mean squared error per AU map, averaged over valid (sample, AU) maps. pred/target (B, N, S, S)."""
    per_map = (pred.float() - target.float()).pow(2).mean(dim=(-2, -1))       # (B, N)
    valid = torch.ones_like(per_map) if mask is None else mask.float()
    return _masked_mean(per_map, valid)


class AULoss(torch.nn.Module):
    """Eq. 11: λ_MDWA·L_MDWA + λ_WDI·L_WDI + λ_MSE·L_MSE for one dataset and training fold."""

    def __init__(self, cfg: LossConfig, dataset: str, train_rates: np.ndarray | Tensor):
        super().__init__()
        self.cfg, self.margin = cfg, cfg.margin_for(dataset)
        rates = torch.as_tensor(np.asarray(train_rates, dtype=np.float64))
        self.register_buffer("rates", rates.float())
        self.register_buffer("weights", torch.as_tensor(class_weights(rates.numpy())).float())

    def forward(self, logits: Tensor, heatmaps: Tensor | None, targets: Tensor, heatmap_targets: Tensor,
                mask: Tensor | None = None) -> dict[str, Tensor]:
        c = self.cfg
        valid = (targets >= 0) if mask is None else mask.bool() & (targets >= 0)
        parts = {
            "mdwa": mdwa_loss(logits, targets, self.weights, self.rates, self.margin, c.gamma_left,
                              c.gamma_right, valid, c.detach_focal),
            "wdi": wdi_loss(logits, targets, self.weights, c.dice_smooth, valid),
            # a plain baseline (au_ttt/model/baselines.py) has no heatmap head: no heatmap term
            "mse": heatmap_mse(heatmaps, heatmap_targets, valid) if heatmaps is not None else logits.new_zeros(()),
        }
        parts["total"] = c.lambda_mdwa * parts["mdwa"] + c.lambda_wdi * parts["wdi"] + c.lambda_mse * parts["mse"]
        return parts
