"""The ``loss`` section of the config (eq. 8–11 weights and constants), kept apart from :mod:`au_ttt.losses`
so that loading settings does not import torch (the Snakemake DAG loads them at parse time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LossConfig"]


@dataclass(frozen=True)
class LossConfig:
    lambda_mdwa: float = 1.0   # eq. 11 weights: the paper gives no values; equal weighting assumed
    lambda_wdi: float = 1.0    # JAA-Net adds its dice loss with weight 1 to the classification loss
    lambda_mse: float = 1.0    # assumed
    margin: float | Literal["auto"] = "auto"  # m: "auto" = 0.1 on BP4D, 0.15 on DISFA (paper §III-A)
    gamma_left: float = 1.0    # B_L (paper §III-A)
    gamma_right: float = 2.0   # B_R (paper §III-A)
    dice_smooth: float = 1.0   # ε of eq. 9 (paper §III-A)
    detach_focal: bool = True  # ME-GraphAU WA loss computes its focusing weight without gradient

    def __post_init__(self) -> None:
        problems = [f"{name} must be >= 0, got {getattr(self, name)}"
                    for name in ("lambda_mdwa", "lambda_wdi", "lambda_mse", "gamma_left", "gamma_right")
                    if getattr(self, name) < 0]
        if self.lambda_mdwa + self.lambda_wdi + self.lambda_mse <= 0:
            problems.append("at least one of lambda_mdwa, lambda_wdi, lambda_mse must be > 0 (nothing to train on)")
        if self.margin != "auto" and not 0 <= self.margin < 1:
            problems.append(f"margin must be 'auto' or a probability margin in [0, 1), got {self.margin}")
        if self.dice_smooth <= 0:
            problems.append(f"dice_smooth must be > 0 (it keeps eq. 9 defined on empty AUs), got {self.dice_smooth}")
        if problems:
            raise ValueError("; ".join(problems))

    def margin_for(self, dataset: str) -> float:
        if self.margin != "auto":
            return float(self.margin)
        from au_ttt.datasets import registry

        margin = registry.get(dataset).loss_margin if dataset in registry.names() else None
        if margin is None:
            raise ValueError(f"loss.margin is 'auto' but dataset {dataset!r} has no paper margin; set loss.margin")
        return margin
