"""The TTT-Linear scan core with the fewest operations per mini-batch: only the W-update chain stays in the loop.

Why: the step-wise scan dispatched about 40 operations per mini-batch forward and 60 backward, each on a
(streams × 14 × 64) tensor, so a training step of AU-TTT ViT-S/16 ran 45 k tiny operations (44× ViT-S's).
This module computes the same function (the dual form of :mod:`au_ttt.model.ttt`, Sun et al. arXiv 2407.04620
§2.7) with what does not depend on the carried state computed once for all mini-batches, and a loop body
of 9 operations forward and 25 backward (3 of them views), against about 40 and 60 before:

* **Bias folded into W.** Rows carry a column of ones, Wa = [W; b] is (F+1)×F, so one product gives
  [Q; K]·W + b and one product updates both: Wa' = Wa − (e∘Ka)ᵀδ, with e = tok_{b-1}·lr folded into
  (e∘Ka) for all mini-batches before the loop.
* **LayerNorm pieces as single kernels.** x̂ = LN(z) and the closed-form inner gradient
  δ = J(z)ᵀ g, g = γ∘(γ∘x̂ + β − (v − k)), are ``native_layer_norm`` and ``native_layer_norm_backward``
  (without affine: J = σ⁻¹(I − 11ᵀ/F − x̂x̂ᵀ/F) is that kernel's Jacobian), and g = c + γ²∘x̂ with
  c = γ∘(β − v + k) computed for all mini-batches at once.
* **Backward.** The vector-Jacobian product of δ(z) is a Hessian-vector product of the inner loss,
  H·dδ = J(γ²∘J dδ) − σ⁻¹(α δ + m u + (u·g/F) x̂) with u = J dδ, α = x̂·dδ/F, m = x̂·g/F. The products with
  W_i stay in the loop (W_i is read once there; hoisting them re-read every state from memory and was
  slower on a CPU); ∂L/∂η, ∂L/∂e, the e∘K and γ∘u terms and the affine gradients run once after it.

Shape legend: n mini-batches, N streams (batch · directions · heads), b mini-batch size, F head dim.
X (n, N, 3, b, F) = Q, K, V; coef (n, N, b, b) = tril(η ∘ (QKᵀ + 1)); e (n, N, b, 1); W0 (N, F, F);
b0, ln_w, ln_b (N, 1, F). ``tests/test_ttt_fast.py`` checks it against the plain dual form in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from au_ttt.model.ttt import LN_EPS

__all__ = ["Recompute", "scan_backward", "scan_forward"]

_ln = torch.ops.aten.native_layer_norm
_ln_bwd = torch.ops.aten.native_layer_norm_backward


def _jac(v: Tensor, z: Tensor, mean: Tensor, rstd: Tensor) -> Tensor:
    """J(z)·v for x̂ = LN(z) without affine (J is symmetric): σ⁻¹(v − mean(v) − x̂·mean(v∘x̂))."""
    return _ln_bwd(v, z, (z.shape[-1],), mean, rstd, None, None, (True, False, False))[0]


def _augmented(X: Tensor) -> Tensor:
    """[Q 1; K 1] (n, N, 2b, F+1): rows that carry the bias column."""
    n, N, _, b, F = X.shape
    Xa = X.new_empty(n, N, 2, b, F + 1)
    Xa[..., :F] = X[:, :, :2]
    Xa[..., F] = 1.0
    return Xa.view(n, N, 2 * b, F + 1)


@dataclass
class Recompute:
    """Per-mini-batch values of one forward sweep, kept for the reverse sweep (each a list over mini-batches)."""

    Wa: list[Tensor]     # state before each mini-batch (N, F+1, F)
    zk: list[Tensor]     # K rows' pre-activation (N, b, F), its LN mean/rstd and x̂
    mu1: list[Tensor]
    r1: list[Tensor]
    x1: list[Tensor]
    g: list[Tensor]      # γ∘(γ∘x̂ + β − target)
    delta: list[Tensor]  # inner gradient δ
    zhat: list[Tensor]   # Q rows' Ẑ, its LN mean/rstd and x̂
    mu2: list[Tensor]
    r2: list[Tensor]
    y: list[Tensor]
    bvk: Tensor          # β − (v − k) of every mini-batch (n, N, b, F)


def scan_forward(X: Tensor, coef: Tensor, e: Tensor, W0: Tensor, b0: Tensor, ln_w: Tensor, ln_b: Tensor,
                 keep: bool = False) -> tuple[Tensor, Recompute | None]:
    """Outputs q + LN(Ẑ)·γ + β (n, N, b, F) of every mini-batch, and with ``keep`` what backward needs."""
    n, N, _, bt, F = X.shape
    Xa = _augmented(X)
    q, k, v = X.unbind(2)
    bvk = ln_b - v + k                                              # β − target, all mini-batches
    c = bvk * ln_w
    g2 = ln_w * ln_w
    qb = q + ln_b
    eKaT = (e * Xa[:, :, bt:]).mT                                   # (n,N,F+1,b) (e∘[K 1])ᵀ
    Wa = torch.cat([W0, b0], dim=1)
    out = X.new_empty(n, N, bt, F)
    rec = Recompute(*([] for _ in range(11)), bvk=bvk) if keep else None
    for xa, ci, cf, ek, qbi, oi in zip(Xa.unbind(0), c.unbind(0), coef.unbind(0), eKaT.unbind(0),
                                       qb.unbind(0), out.unbind(0), strict=True):
        zq, zk = torch.bmm(xa, Wa).split(bt, 1)                     # [Q; K]·W + b
        x1, mu1, r1 = _ln(zk, (F,), None, None, LN_EPS)
        g = torch.addcmul(ci, g2, x1)
        delta = _jac(g, zk, mu1, r1)                                # ∂ℓ/∂z at the mini-batch's start state
        zhat = torch.baddbmm(zq, cf, delta, alpha=-1.0)             # Ẑ = QW + b − tril(η∘(QKᵀ+1))·δ
        y, mu2, r2 = _ln(zhat, (F,), None, None, LN_EPS)
        torch.addcmul(qbi, ln_w, y, out=oi)
        if rec is not None:
            for lst, t in zip((rec.Wa, rec.zk, rec.mu1, rec.r1, rec.x1, rec.g, rec.delta, rec.zhat, rec.mu2,
                               rec.r2, rec.y), (Wa, zk, mu1, r1, x1, g, delta, zhat, mu2, r2, y), strict=True):
                lst.append(t)
        Wa = torch.baddbmm(Wa, ek, delta, alpha=-1.0)               # W' = W − Kᵀ(e∘δ), b' = b − Σ e∘δ
    return out, rec


def scan_backward(grad: Tensor, X: Tensor, coef: Tensor, e: Tensor, W0: Tensor, b0: Tensor, ln_w: Tensor,
                  ln_b: Tensor, rec: Recompute) -> tuple[Tensor, ...]:
    """One reverse sweep over ``rec`` (a ``keep=True`` forward of the same inputs): ∂L/∂(X, coef, e, W0, b0,
    ln_w, ln_b) for the output gradient ``grad`` (n, N, b, F). ∂L/∂coef is lower-triangular (n, N, b, b),
    ∂L/∂e is (n, N, b, 1), ∂L/∂W0 (N, F, F), ∂L/∂b0 (N, 1, F), ∂L/∂ln_w and ∂L/∂ln_b (N, F)."""
    n, N, _, bt, F = X.shape
    Xa = _augmented(X)
    Qa_T, Ka_T = Xa.mT.split(bt, -1)                                # (n,N,F+1,b) each
    eKa = e * Ka_T.mT                                               # (n,N,b,F+1)
    g2 = ln_w * ln_w
    gWa = W0.new_zeros(N, F + 1, F)                                 # ∂L/∂Wa after the last mini-batch
    P = X.new_empty(n, N, bt, F + 1)                                # δ·(∂L/∂Wa')ᵀ = −∂L/∂(e∘Ka)
    dQ, dK = torch.empty_like(grad), torch.empty_like(grad)
    dzhat, U = [None] * n, [None] * n
    loop = zip(range(n), grad.unbind(0), (grad * ln_w).unbind(0), coef.mT.unbind(0), eKa.unbind(0), P.unbind(0),
               Qa_T.unbind(0), Ka_T.unbind(0), dQ.unbind(0), dK.unbind(0), strict=True)
    for i, gi, dy, cT, ek, p, qT, kT, dq, dk in reversed(list(loop)):
        delta, zk, mu1, r1, x1, g = rec.delta[i], rec.zk[i], rec.mu1[i], rec.r1[i], rec.x1[i], rec.g[i]
        WT = rec.Wa[i][:, :F].mT                                    # (N,F,F) W_iᵀ
        torch.bmm(delta, gWa.mT, out=p)
        dz2 = _jac(dy, rec.zhat[i], rec.mu2[i], rec.r2[i])          # through the output LN
        ddelta = torch.baddbmm(torch.bmm(ek, gWa), cT, dz2, beta=-1.0, alpha=-1.0)
        u = _jac(ddelta, zk, mu1, r1)                               # ∂L/∂g = J·dδ
        # δ(z)'s vector-Jacobian product = Hessian-vector product J(γ²∘u) − σ⁻¹(α δ + m u + (u·g/F) x̂)
        rows = torch.addcmul((x1 * ddelta).mean(-1, keepdim=True) * delta, (g * x1).mean(-1, keepdim=True), u)
        rows = torch.addcmul(rows, (u * g).mean(-1, keepdim=True), x1)
        dz1 = torch.addcmul(_jac(g2 * u, zk, mu1, r1), r1, rows, value=-1.0)
        torch.baddbmm(gi, dz2, WT, out=dq)                          # out = q + …; z = Q W + b
        torch.baddbmm(ln_w * u, dz1, WT, out=dk)                    # z = K W + b; c = γ(β − v + k)
        gWa = torch.baddbmm(torch.baddbmm(gWa, qT, dz2), kT, dz1)    # z = [Q 1; K 1]·Wa
        dzhat[i], U[i] = dz2, u
    U = torch.stack(U)
    dK.addcmul_(e, P[..., :F], value=-1.0)                          # Wa' = Wa − (e∘Ka)ᵀδ
    dX = torch.stack([dQ, dK, (ln_w * U).neg_()], dim=2)            # c = γ(β − v + k)
    return _gradients(grad, Ka_T.mT, ln_w, rec, P, dX, torch.stack(dzhat), U, gWa)


def _gradients(grad: Tensor, Ka: Tensor, ln_w: Tensor, rec: Recompute, P: Tensor, dX: Tensor, dzhat: Tensor,
               U: Tensor, gWa: Tensor) -> tuple[Tensor, ...]:
    """Everything of backward that needs no carry, over all mini-batches at once."""
    F = grad.shape[-1]
    dcoef = torch.tril(dzhat @ torch.stack(rec.delta).mT).neg_()    # Ẑ = … − coef·δ
    de = -torch.linalg.vecdot(P, Ka).unsqueeze(-1)                  # Wa' = Wa − (e∘Ka)ᵀδ
    d_ln_w = (grad * torch.stack(rec.y) + U * (rec.bvk + 2.0 * ln_w * torch.stack(rec.x1))).sum((0, 2))
    d_ln_b = (grad + ln_w * U).sum((0, 2))
    return dX, dcoef, de, gWa[:, :F], gWa[:, F:], d_ln_w, d_ln_b
