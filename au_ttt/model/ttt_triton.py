"""The TTT-Linear scan core as two Triton kernels: one program per stream keeps W and b on chip throughout.

Why: on a GPU every PyTorch operation is at least one kernel launch, and the fused PyTorch loop
(:mod:`au_ttt.model.ttt_fused`) still launches about 9 per mini-batch forward and 18 backward. Here one
program per stream (batch · direction · head) holds the fast weight W (F×F) and bias b in registers across
all mini-batches — the design of the TTT authors' GPU kernels (test-time-training/ttt-lm-kernels) and of LaCT
(Zhang et al., arXiv 2505.23884) — so the whole scan is one launch forward and one backward.

* Forward: per mini-batch, [Q; K]·W + b, the LayerNorm-L2 inner gradient δ, Ẑ = QW + b − coef·δ,
  out = q + γ∘LN(Ẑ) + β, then W −= Kᵀ(e∘δ), b −= Σ e∘δ (same math as :mod:`au_ttt.model.ttt_fused`).
* Backward: the program first re-runs the W chain and writes each mini-batch's start state (W_i, b_i) to a
  scratch buffer, then sweeps backward, recomputing the step's pieces from (W_i, b_i) and carrying ∂L/∂W,
  ∂L/∂b and the inner LN affine gradients on chip; δ's vector-Jacobian product is the same Hessian-vector
  product as the PyTorch core's.

Products use ``input_precision="ieee"`` (true fp32) unless torch allows TF32 for CUDA matmuls, so the kernel
computes what the PyTorch path computes in float32. The kernels take float32 and a power-of-two head dim ≥ 16
(F = 64 in ViT-S/16); :func:`supports` says when the auto backend may pick them. With ``TRITON_INTERPRET=1``
in the environment, Triton runs them on the CPU (numpy), which is how the tests
check them without a GPU (``triton.jit`` reads that variable when it decorates, i.e. when this module is
imported). Each launch is one custom op with a FLOP formula (the fused PyTorch core's products, backward with
its recomputing forward), so the GPU cost model's op profiles price the kernels' arithmetic
(:mod:`au_ttt.planning.profile_steps`).

Shape legend as in :mod:`au_ttt.model.ttt_fused`: X (n, N, 3, b, F), coef (n, N, b, b), e (n, N, b, 1),
W0 (N, F, F), b0, ln_w, ln_b (N, 1, F).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from au_ttt.model.ttt import LN_EPS

__all__ = ["INTERPRETED", "available", "scan_backward", "scan_forward", "supports"]


INTERPRETED = bool(triton.knobs.runtime.interpret)   # triton.jit read TRITON_INTERPRET when this module loaded


def available() -> bool:
    """The kernels can run here: a CUDA device, or the interpreter (``TRITON_INTERPRET=1`` at import)."""
    return torch.cuda.is_available() or INTERPRETED


def supports(head_dim: int, dtype: torch.dtype) -> bool:
    """Shapes and dtypes the kernels take: float32, head dim a power of two ≥ 16."""
    return dtype == torch.float32 and head_dim >= 16 and head_dim & (head_dim - 1) == 0


@triton.jit
def _rownorm(z, F: tl.constexpr, eps):
    """x̂ and 1/σ of each row of z (BT, F)."""
    zc = z - (tl.sum(z, 1) / F)[:, None]
    r = tl.rsqrt(tl.sum(zc * zc, 1) / F + eps)
    return zc * r[:, None], r

@triton.jit
def _jvp(v, x, r, F: tl.constexpr):
    """J·v for x̂ = LN(z): σ⁻¹(v − mean(v) − x̂·mean(v∘x̂)), row-wise."""
    return r[:, None] * (v - (tl.sum(v, 1) / F)[:, None] - x * (tl.sum(v * x, 1) / F)[:, None])

@triton.jit
def _step(q, k, v, cf, W, bias, gam, bet, eps, F: tl.constexpr, PREC: tl.constexpr):
    """One mini-batch from (W, b): the pieces both kernels use."""
    zq = tl.dot(q, W, input_precision=PREC) + bias[None, :]
    zk = tl.dot(k, W, input_precision=PREC) + bias[None, :]
    x1, r1 = _rownorm(zk, F, eps)
    g = gam[None, :] * (gam[None, :] * x1 + bet[None, :] - (v - k))
    delta = _jvp(g, x1, r1, F)
    y, r2 = _rownorm(zq - tl.dot(cf, delta, input_precision=PREC), F, eps)
    return x1, r1, g, delta, y, r2

@triton.jit
def _fwd(X, COEF, E, W0, B0, LNW, LNB, OUT, n_steps, N, b, eps,
        F: tl.constexpr, BT: tl.constexpr, PREC: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    r, f = tl.arange(0, BT), tl.arange(0, F)
    rm = r < b
    tm = rm[:, None] & (f[None, :] < F)
    off = r[:, None] * F + f[None, :]
    W = tl.load(W0 + pid * F * F + f[:, None] * F + f[None, :])
    bias = tl.load(B0 + pid * F + f)
    gam, bet = tl.load(LNW + pid * F + f), tl.load(LNB + pid * F + f)
    for i in range(n_steps):
        s = i * N + pid
        q = tl.load(X + s * 3 * b * F + off, mask=tm, other=0.0)
        k = tl.load(X + (s * 3 + 1) * b * F + off, mask=tm, other=0.0)
        v = tl.load(X + (s * 3 + 2) * b * F + off, mask=tm, other=0.0)
        e = tl.load(E + s * b + r, mask=rm, other=0.0)
        cf = tl.load(COEF + s * b * b + r[:, None] * b + r[None, :], mask=rm[:, None] & rm[None, :], other=0.0)
        _, _, _, delta, y, _ = _step(q, k, v, cf, W, bias, gam, bet, eps, F, PREC)
        tl.store(OUT + s * b * F + off, q + gam[None, :] * y + bet[None, :], mask=tm)
        ed = e[:, None] * delta
        W = W - tl.dot(tl.trans(k), ed, input_precision=PREC)
        bias = bias - tl.sum(ed, 0)


@triton.jit
def _save_w_chain(X, E, W0, B0, WS, BS, gam, bet, pid, n_steps, N, b, eps, r, f, rm, tm, off, woff,
                  F: tl.constexpr, PREC: tl.constexpr):
    """Replay the inner model's updates and store each mini-batch's start state (W, b) to scratch, so that
    the reverse pass reads them instead of recomputing the chain from W0."""
    W = tl.load(W0 + pid * F * F + woff)
    bias = tl.load(B0 + pid * F + f)
    for i in range(n_steps):
        s = i * N + pid
        tl.store(WS + s * F * F + woff, W)
        tl.store(BS + s * F + f, bias)
        k = tl.load(X + (s * 3 + 1) * b * F + off, mask=tm, other=0.0)
        v = tl.load(X + (s * 3 + 2) * b * F + off, mask=tm, other=0.0)
        e = tl.load(E + s * b + r, mask=rm, other=0.0)
        x1, r1 = _rownorm(tl.dot(k, W, input_precision=PREC) + bias[None, :], F, eps)
        delta = _jvp(gam[None, :] * (gam[None, :] * x1 + bet[None, :] - (v - k)), x1, r1, F)
        ed = e[:, None] * delta
        W = W - tl.dot(tl.trans(k), ed, input_precision=PREC)
        bias = bias - tl.sum(ed, 0)


@triton.jit
def _bwd(GRAD, X, COEF, E, W0, B0, LNW, LNB, WS, BS, DX, DCOEF, DE, DW, DB, DLNW, DLNB, n_steps, N, b, eps,
        F: tl.constexpr, BT: tl.constexpr, PREC: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    r, f = tl.arange(0, BT), tl.arange(0, F)
    rm = r < b
    tm = rm[:, None] & (f[None, :] < F)
    cm = rm[:, None] & rm[None, :]
    off = r[:, None] * F + f[None, :]
    woff = f[:, None] * F + f[None, :]
    gam, bet = tl.load(LNW + pid * F + f), tl.load(LNB + pid * F + f)
    _save_w_chain(X, E, W0, B0, WS, BS, gam, bet, pid, n_steps, N, b, eps, r, f, rm, tm, off, woff, F, PREC)
    tl.debug_barrier()
    gW = tl.zeros((F, F), dtype=tl.float32)
    gb = tl.zeros((F,), dtype=tl.float32)
    dgam = tl.zeros((F,), dtype=tl.float32)
    dbet = tl.zeros((F,), dtype=tl.float32)
    for j in range(n_steps):
        i = n_steps - 1 - j
        s = i * N + pid
        W = tl.load(WS + s * F * F + woff)
        bias = tl.load(BS + s * F + f)
        q = tl.load(X + s * 3 * b * F + off, mask=tm, other=0.0)
        k = tl.load(X + (s * 3 + 1) * b * F + off, mask=tm, other=0.0)
        v = tl.load(X + (s * 3 + 2) * b * F + off, mask=tm, other=0.0)
        e = tl.load(E + s * b + r, mask=rm, other=0.0)
        cf = tl.load(COEF + s * b * b + r[:, None] * b + r[None, :], mask=cm, other=0.0)
        do = tl.load(GRAD + s * b * F + off, mask=tm, other=0.0)
        x1, r1, g, delta, y, r2 = _step(q, k, v, cf, W, bias, gam, bet, eps, F, PREC)
        dz2 = _jvp(gam[None, :] * do, y, r2, F)                  # through the output LN
        pw = tl.dot(delta, tl.trans(gW), input_precision=PREC)  # δ·(∂L/∂W')ᵀ
        pb = tl.sum(delta * gb[None, :], 1)
        tl.store(DE + s * b + r, -(tl.sum(pw * k, 1) + pb), mask=rm)
        carry = e[:, None] * (tl.dot(k, gW, input_precision=PREC) + gb[None, :])
        ddelta = -(carry + tl.dot(tl.trans(cf), dz2, input_precision=PREC))
        u = _jvp(ddelta, x1, r1, F)                              # ∂L/∂g
        rows = ((tl.sum(x1 * ddelta, 1) / F)[:, None] * delta + (tl.sum(g * x1, 1) / F)[:, None] * u
                + (tl.sum(u * g, 1) / F)[:, None] * x1)
        dz1 = _jvp(gam[None, :] * gam[None, :] * u, x1, r1, F) - r1[:, None] * rows
        gu = gam[None, :] * u
        tl.store(DX + s * 3 * b * F + off, do + tl.dot(dz2, tl.trans(W), input_precision=PREC), mask=tm)
        tl.store(DX + (s * 3 + 1) * b * F + off,
                 tl.dot(dz1, tl.trans(W), input_precision=PREC) + gu - e[:, None] * pw, mask=tm)
        tl.store(DX + (s * 3 + 2) * b * F + off, -gu, mask=tm)
        dcf = tl.dot(dz2, tl.trans(delta), input_precision=PREC)
        tl.store(DCOEF + s * b * b + r[:, None] * b + r[None, :],
                 tl.where(r[:, None] >= r[None, :], -dcf, 0.0), mask=cm)
        gW += tl.dot(tl.trans(q), dz2, input_precision=PREC) + tl.dot(tl.trans(k), dz1, input_precision=PREC)
        gb += tl.sum(dz2, 0) + tl.sum(dz1, 0)
        dgam += tl.sum(do * y + u * (bet[None, :] - v + k) + 2.0 * gam[None, :] * u * x1, 0)
        dbet += tl.sum(do + gu, 0)
    tl.store(DW + pid * F * F + woff, gW)
    tl.store(DB + pid * F + f, gb)
    tl.store(DLNW + pid * F + f, dgam)
    tl.store(DLNB + pid * F + f, dbet)


def _launch_args(X: Tensor) -> tuple[int, int, int, int, dict]:
    n, N, _, b, F = X.shape
    if not supports(F, X.dtype):
        raise ValueError(f"the Triton scan takes float32 and a power-of-two head dim >= 16, got {X.dtype}, F={F}")
    prec = "tf32" if X.is_cuda and torch.backends.cuda.matmul.allow_tf32 else "ieee"
    BT = max(16, 1 << (b - 1).bit_length())
    return n, N, b, F, {"F": F, "BT": BT, "PREC": prec, "num_warps": 8 if F >= 64 else 4}


@torch.library.custom_op("au_ttt::ttt_scan_forward", mutates_args=())
def _forward_op(X: Tensor, coef: Tensor, e: Tensor, W0: Tensor, b0: Tensor, ln_w: Tensor, ln_b: Tensor) -> Tensor:
    n, N, b, F, meta = _launch_args(X)
    out = X.new_empty(n, N, b, F)
    _fwd[(N,)](X.contiguous(), coef.contiguous(), e.contiguous(), W0.contiguous(), b0.contiguous(), ln_w.contiguous(),
               ln_b.contiguous(), out, n, N, b, LN_EPS, **meta)
    return out


@_forward_op.register_fake
def _(X, coef, e, W0, b0, ln_w, ln_b):
    n, N, _, b, F = X.shape
    return X.new_empty(n, N, b, F)


@torch.library.custom_op("au_ttt::ttt_scan_backward", mutates_args=())
def _backward_op(grad: Tensor, X: Tensor, coef: Tensor, e: Tensor, W0: Tensor, b0: Tensor, ln_w: Tensor,
                 ln_b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    n, N, b, F, meta = _launch_args(X)
    dX, dcoef, de, dW, db, dlnw, dlnb = _backward_outputs(X)
    WS, BS = X.new_empty(n, N, F, F), X.new_empty(n, N, F)          # each mini-batch's start state
    _bwd[(N,)](grad.contiguous(), X.contiguous(), coef.contiguous(), e.contiguous(), W0.contiguous(), b0.contiguous(),
               ln_w.contiguous(), ln_b.contiguous(), WS, BS, dX, dcoef, de, dW, db, dlnw, dlnb, n, N, b, LN_EPS, **meta)
    return dX, dcoef, de, dW, db, dlnw, dlnb


def _backward_outputs(X: Tensor) -> tuple[Tensor, ...]:
    n, N, _, b, F = X.shape
    return (X.new_empty(X.shape), X.new_empty(n, N, b, b), X.new_empty(n, N, b, 1), X.new_empty(N, F, F),
            X.new_empty(N, 1, F), X.new_empty(N, F), X.new_empty(N, F))


@_backward_op.register_fake
def _(grad, X, coef, e, W0, b0, ln_w, ln_b):
    return _backward_outputs(X)


def _forward_flops(x_shape) -> int:
    """The fused PyTorch core's product FLOPs per forward: [Q 1; K 1]·Wa, coef·δ and the Wa update."""
    n, N, _, b, F = x_shape
    return n * N * (6 * b * (F + 1) * F + 2 * b * b * F)


@register_flop_formula(torch.ops.au_ttt.ttt_scan_forward)
def _forward_op_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    """Counted as :mod:`au_ttt.model.ttt_fused` counts, so the cost model prices the same arithmetic."""
    return _forward_flops(x_shape)


@register_flop_formula(torch.ops.au_ttt.ttt_scan_backward)
def _backward_op_flops(grad_shape, x_shape, *args, out_shape=None, **kwargs) -> int:
    """The recomputing forward plus the reverse sweep's products (8 with Wa, 2 with W_iᵀ, coef and ∂coef)."""
    n, N, _, b, F = x_shape
    return _forward_flops(x_shape) + n * N * (8 * b * (F + 1) * F + 4 * b * F * F + 4 * b * b * F)


def scan_forward(X: Tensor, coef: Tensor, e: Tensor, W0: Tensor, b0: Tensor, ln_w: Tensor, ln_b: Tensor,
                 keep: bool = False) -> tuple[Tensor, None]:
    """Outputs (n, N, b, F) of every mini-batch, one kernel launch (one operation ``au_ttt::ttt_scan_forward`` to
    the dispatcher, so operation counts and torch.compile see it as one); nothing is kept."""
    return _forward_op(X, coef, e, W0, b0, ln_w, ln_b), None


def scan_backward(grad: Tensor, X: Tensor, coef: Tensor, e: Tensor, W0: Tensor, b0: Tensor, ln_w: Tensor,
                  ln_b: Tensor, kept: None = None) -> tuple[Tensor, ...]:
    """∂L/∂(X, coef, e, W0, b0, ln_w, ln_b) for the output gradient ``grad`` (n, N, b, F), as
    :func:`au_ttt.model.ttt_fused.scan_backward` returns them; one kernel launch (``au_ttt::ttt_scan_backward``)."""
    return _backward_op(grad, X, coef, e, W0, b0, ln_w, ln_b)
