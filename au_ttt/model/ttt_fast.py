"""TTT-Linear scan with a hand-written backward: the dual form's results, a fraction of its memory and time.

Why: autograd through :func:`au_ttt.model.ttt.ttt_linear` keeps every mini-batch step's intermediates for
backward, and slicing one step out of a stacked tensor makes autograd allocate a zero-filled full-size
gradient per step. This module computes the same function with the same math:

1. :func:`_step` runs one mini-batch from its start state (W_i, b_i): one matmul [Q_i; K_i]·W_i feeds both
   the inner gradient δ_i (K rows, closed form of ``ln_l2_grad``) and the output Ẑ_i = Q_i W_i + b_i −
   tril(η_i ∘ (Q_i K_iᵀ + 1)) δ_i (Q rows); the carried update is W_{i+1} = W_i − K_iᵀ(e_i ∘ δ_i) with
   e = tok_{b-1}·lr.
2. The autograd Function saves only its inputs (the fused Q/K/V projection and the η gate). Backward re-runs
   the steps without a graph, then one reverse sweep applies :func:`_step_backward`, the step's hand-derived
   vector-Jacobian product, carrying ∂L/∂W_i and ∂L/∂b_i; δ's derivative is :func:`ln_l2_grad_vjp`.
3. A trailing remainder of L mod b tokens (the CLS token at a row mini-batch) is zero-padded to a full
   mini-batch with η = 0: padded tokens come after every real one, so tril(·) and η = 0 keep them out of
   the real outputs, and the last mini-batch's update of W is never read. Results equal the plain dual
   form's, whose remainder runs with tok[:r].
4. Scan directions (Bi-TTT, eq. 6) and heads are independent streams N = B·S·H of one scan; RoPE and the
   backward scan's token order are applied inside, so nothing per direction is stored.

Layout: (n, N, 3, b, F) — n mini-batches, streams, Q/K/V, mini-batch size, head dim; the step axis first
so that each step's slice is contiguous. ``tests/test_ttt_fast.py`` checks outputs and every gradient
against autograd through the plain dual form to 1e-10 in float64, and ``gradcheck``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from au_ttt.model.rope import rope_, rope_tables
from au_ttt.model.ttt import LN_EPS, default_token_scale

__all__ = ["ScanSpec", "ln_l2_grad_vjp", "reverse_patches_index", "ttt_linear_fast", "ttt_scan"]


@dataclass(frozen=True)
class ScanSpec:
    """What one call scans: heads, mini-batch, directions (``True`` = reversed patches, CLS last), RoPE."""

    num_heads: int
    mini_batch: int
    orders: tuple[bool, ...] = (False,)
    rope_theta: float | None = 10000.0   # None: no RoPE
    compile: bool = False                # run the two step functions through torch.compile
    norm_eps: float = 1e-6               # the post-norm's epsilon, when one is given


def reverse_patches_index(num_tokens: int, device=None) -> Tensor:
    """Permutation [J-1, …, 0, J]: patches reversed, CLS (last) kept last. It is its own inverse."""
    return torch.cat([torch.arange(num_tokens - 2, -1, -1, device=device),
                      torch.tensor([num_tokens - 1], device=device)])


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Σ_f a∘b over the last dim, kept as a trailing dim of 1."""
    return torch.linalg.vecdot(a, b).unsqueeze(-1)


# ---------------------------------------------------------------- closed-form pieces (rows of F features)

def _normalize(z: Tensor) -> tuple[Tensor, Tensor]:
    """x̂ = (z − μ)/σ and 1/σ over the last dim (on one mini-batch's cache-sized tensors, plain ops beat both
    ``var_mean`` and the fused LayerNorm kernel on CPU)."""
    centred = z - z.mean(-1, keepdim=True)
    rstd = torch.rsqrt(_dot(centred, centred) / z.shape[-1] + LN_EPS)
    return centred.mul_(rstd), rstd


def _layer_norm_vjp(dx_hat: Tensor, x_hat: Tensor, rstd: Tensor, extra: Tensor | float = 0.0) -> Tensor:
    """∂L/∂z from ∂L/∂x̂ for x̂ = (z − μ)/σ: σ⁻¹(dx̂ − mean(dx̂) − x̂·(mean(dx̂∘x̂) + extra))."""
    f = x_hat.shape[-1]
    centred = dx_hat - dx_hat.mean(-1, keepdim=True)
    return torch.addcmul(centred, x_hat, _dot(dx_hat, x_hat) / f + extra, value=-1.0).mul_(rstd)


def _inner_grad(z: Tensor, target: Tensor, weight: Tensor, bias: Tensor) -> tuple[Tensor, ...]:
    """δ = ∂/∂z ½‖LN(z) − target‖² (as :func:`~au_ttt.model.ttt.ln_l2_grad`) and the pieces its derivative
    needs: (δ, x̂, 1/σ, g, Σ(g∘x̂)) with g = γ∘(γ∘x̂ + β − target) and δ = σ⁻¹(g − Σg/F − x̂·Σ(g∘x̂)/F)."""
    f = z.shape[-1]
    x_hat, rstd = _normalize(z)
    g = (torch.addcmul(bias, weight, x_hat) - target).mul_(weight)
    g_x = _dot(g, x_hat)
    delta = torch.addcmul(g, x_hat, g_x / f, value=-1.0).sub_(g.sum(-1, keepdim=True) / f).mul_(rstd)
    return delta, x_hat, rstd, g, g_x


def ln_l2_grad_vjp(d_delta: Tensor, x_hat: Tensor, rstd: Tensor, g: Tensor, g_x: Tensor, delta: Tensor,
                   weight: Tensor) -> tuple[Tensor, Tensor]:
    """Vector-Jacobian product of :func:`~au_ttt.model.ttt.ln_l2_grad`, row-wise.

    With P = F·g − Σg − x̂·Σ(g∘x̂) and δ = (σ⁻¹/F)·P, for an upstream ``d_delta``: u = (σ⁻¹/F)·d_delta;
    ∂L/∂g = F·u − Σu − x̂·Σ(u∘x̂); ∂L/∂x̂ = γ²∘∂L/∂g − Σ(g∘x̂)·u − Σ(u∘x̂)·g; ∂L/∂σ⁻¹ = Σ(d_delta∘δ)/σ⁻¹;
    ∂L/∂z = LN-VJP(∂L/∂x̂) − ∂L/∂σ⁻¹·σ⁻²·x̂/F (σ⁻¹ also depends on z through the variance).
    Returns (∂L/∂z, ∂L/∂g); the caller turns ∂L/∂g into the target's and γ, β's gradients.
    """
    f = x_hat.shape[-1]
    u = d_delta * (rstd / f)
    u_x = _dot(u, x_hat)
    dg = torch.addcmul(u * f - u.sum(-1, keepdim=True), x_hat, u_x, value=-1.0)
    dx_hat = torch.addcmul(torch.addcmul(dg * (weight * weight), u, g_x, value=-1.0), g, u_x, value=-1.0)
    d_rstd = _dot(d_delta, delta) / rstd
    return _layer_norm_vjp(dx_hat, x_hat, rstd, d_rstd * rstd / f), dg


# ---------------------------------------------------------------- one mini-batch and its derivative

def _step(qkv: Tensor, W: Tensor, b: Tensor, coef: Tensor, e: Tensor, ln_w: Tensor, ln_b: Tensor
          ) -> tuple[Tensor, ...]:
    """One mini-batch of the dual form from its start state.

    qkv: (N,3,b,F) this mini-batch's Q, K, V; W: (N,F,F); b, ln_w, ln_b: (N,1,F); coef: (N,b,b) =
    tril(η ∘ (QKᵀ + 1)); e: (N,b,1) = tok_{b-1}·lr. Returns out = Q + LN(Ẑ), the pieces backward needs
    (δ, x̂1, 1/σ1, g, Σ(g∘x̂1), x̂2, 1/σ2) and the next state (W', b').
    """
    bt = qkv.shape[2]
    q, k, v = qkv.unbind(1)
    z = torch.baddbmm(b, qkv[:, :2].flatten(1, 2), W)                # (N,2b,F) = [Q W + b; K W + b]
    delta, x1, r1, g, g_x = _inner_grad(z[:, bt:], v - k, ln_w, ln_b)
    x2, r2 = _normalize(torch.baddbmm(z[:, :bt], coef, delta, alpha=-1.0))   # Ẑ = QW + b − coef·δ
    step = e * delta
    return (torch.addcmul(q + ln_b, x2, ln_w), delta, x1, r1, g, g_x, x2, r2,
            torch.baddbmm(W, k.mT, step, alpha=-1.0), b - step.sum(1, keepdim=True))


def _step_backward(d_out: Tensor, qkv: Tensor, W: Tensor, delta: Tensor, x1: Tensor, r1: Tensor, g: Tensor,
                   g_x: Tensor, x2: Tensor, r2: Tensor, coef: Tensor, e: Tensor, gW: Tensor, gb: Tensor,
                   ln_w: Tensor, ln_b: Tensor) -> tuple[Tensor, ...]:
    """Vector-Jacobian product of :func:`_step` for ∂L/∂out = ``d_out`` and ∂L/∂(W', b') = (gW, gb).

    Returns ∂L/∂Q, ∂L/∂K, ∂L/∂V, ∂L/∂coef, ∂L/∂e (summed over F), ∂L/∂(W, b) and this step's ∂L/∂γ,
    ∂L/∂β per stream (N, F).
    """
    bt = qkv.shape[2]
    _, k, v = qkv.unbind(1)
    qk = qkv[:, :2].flatten(1, 2)                                    # (N,2b,F) rows [Q; K]
    dz2 = _layer_norm_vjp(d_out * ln_w, x2, r2)                      # ∂L/∂Ẑ
    d_step = torch.baddbmm(gb, k, gW, beta=-1.0, alpha=-1.0)         # ∂L/∂(e∘δ) = −K·gW − gb
    d_delta = torch.baddbmm(e * d_step, coef.mT, dz2, alpha=-1.0)    # … + ∂L/∂δ through Ẑ
    dz1, dg = ln_l2_grad_vjp(d_delta, x1, r1, g, g_x, delta, ln_w)   # ∂L/∂(K W + b), ∂L/∂g
    dz = torch.cat([dz2, dz1], dim=1)                                # rows as [Q; K]
    d_in = dz @ W.mT                                                 # ∂L/∂[Q; K] through [Q; K]·W
    dv = dg * -ln_w                                                  # g = γ²x̂ + γβ − γ·(v − k)
    dk = torch.baddbmm(d_in[:, bt:] - dv, e * delta, gW.mT, alpha=-1.0)
    d_ln_w = (d_out * x2).add_(dg * torch.addcmul(ln_b - (v - k), x1, 2.0 * ln_w)).sum(1)
    d_ln_b = (d_out - dv).sum(1)
    return (d_out + d_in[:, :bt], dk, dv, torch.tril(dz2 @ delta.mT).neg_(), _dot(d_step, delta),
            torch.baddbmm(gW, qk.mT, dz), gb + dz.sum(1, keepdim=True), d_ln_w, d_ln_b)


@functools.cache
def _kernels(compiled: bool):
    """The step functions, eager or through ``torch.compile`` (which fuses their elementwise chains)."""
    if not compiled:
        return _step, _step_backward
    return torch.compile(_step, dynamic=False), torch.compile(_step_backward, dynamic=False)


# ---------------------------------------------------------------- the scan over all mini-batches

def _coef(X: Tensor, lr: Tensor, tok: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """η_ij = tok_i·lr_j, QKᵀ + 1 and their causal product tril(η ∘ (QKᵀ + 1)), all (n,N,b,b)."""
    eta = tok[:, None] * lr.mT
    qk1 = X[:, :, 0] @ X[:, :, 1].mT + 1.0
    return eta, qk1, torch.tril(eta * qk1)


def _scan_forward(X: Tensor, lr: Tensor, tok: Tensor, W: Tensor, b: Tensor, ln_w: Tensor, ln_b: Tensor,
                  compiled: bool = False, keep: bool = False) -> tuple[Tensor, list]:
    """Outputs (n,N,b,F), and with ``keep`` every step's pieces for backward.

    X: (n,N,3,b,F); lr: (n,N,b,1); tok: (b,); W: (N,F,F) = W0 per stream; b, ln_w, ln_b: (N,1,F).
    """
    step_fn = _kernels(compiled)[0]
    coef = _coef(X, lr, tok)[2]
    e = tok[-1] * lr                                                 # η of the last token: the carried update
    outs, kept = [], []
    for i in range(X.shape[0]):
        out, *pieces, W_next, b_next = step_fn(X[i], W, b, coef[i], e[i], ln_w, ln_b)
        outs.append(out)
        if keep:
            kept.append((W, *pieces))
        W, b = W_next, b_next
    return torch.stack(outs), kept


def _scan_backward(grad: Tensor, X: Tensor, lr: Tensor, tok: Tensor, W0: Tensor, b0: Tensor, ln_w: Tensor,
                   ln_b: Tensor, kept: list, compiled: bool = False) -> tuple[Tensor, ...]:
    """All input gradients of :func:`_scan_forward` for the output gradient ``grad`` (n,N,b,F); ``kept`` is
    the forward's ``keep=True`` list (emptied on the way)."""
    back_fn = _kernels(compiled)[1]
    eta, qk1, coef = _coef(X, lr, tok)
    e = tok[-1] * lr
    dX, dcoef, de = torch.empty_like(X), torch.empty_like(coef), torch.empty_like(lr)
    gW, gb = torch.zeros_like(W0), torch.zeros_like(b0)              # ∂L/∂(W, b) after the last step: 0
    d_ln_w = d_ln_b = 0.0
    for i in reversed(range(X.shape[0])):
        W, *pieces = kept[i]
        kept[i] = None                                               # free this step's pieces early
        dq, dk, dv, dcoef[i], de[i], gW, gb, dlw, dlb = back_fn(grad[i], X[i], W, *pieces, coef[i], e[i], gW, gb,
                                                                ln_w, ln_b)
        dX[i, :, 0], dX[i, :, 1], dX[i, :, 2] = dq, dk, dv
        d_ln_w, d_ln_b = d_ln_w + dlw, d_ln_b + dlb
    deta, dqk = dcoef * qk1, dcoef * eta                             # through coef = tril(η ∘ (QKᵀ + 1))
    dX[:, :, 0] += dqk @ X[:, :, 1]
    dX[:, :, 1] += dqk.mT @ X[:, :, 0]
    dtok = (deta * lr.mT).sum((0, 1, 3))                             # (b,)
    dtok = torch.cat([dtok[:-1], dtok[-1:] + (de * lr).sum()])       # e = tok_{b-1}·lr
    dlr = (deta * tok[:, None]).sum(-2).unsqueeze(-1) + tok[-1] * de
    return dX, dlr, dtok, gW, gb, d_ln_w, d_ln_b


# ---------------------------------------------------------------- token layout ↔ scan layout

@functools.cache
def _image_index(L: int, mb: int, orders: tuple[bool, ...], device: str) -> Tensor:
    """For output row p·S + s (token p, direction s): its row s·Lp + (scan position of p) in scan order."""
    Lp = -(-L // mb) * mb
    perm = reverse_patches_index(L, device)
    pos = [perm if rev else torch.arange(L, device=device) for rev in orders]
    return torch.stack([s * Lp + p for s, p in enumerate(pos)], dim=1).flatten()


def _to_scan(seqs: list[Tensor], mb: int, dtype: torch.dtype) -> Tensor:
    """S sequences (B, L, *mid, H, F) in scan order → (n, B·S·H, *mid, b, F), zero-padded to n·b tokens."""
    B, L, *mid, H, F = seqs[0].shape
    nm, S = len(mid), len(seqs)
    n_full, rem = divmod(L, mb)
    n = n_full + (rem > 0)
    X = seqs[0].new_empty((n, B, S, H, *mid, mb, F), dtype=dtype)
    view = X.permute(1, 2, 0, 4 + nm, *range(4, 4 + nm), 3, 5 + nm)  # (B, S, n, b, *mid, H, F)
    for s, seq in enumerate(seqs):
        view[:, s, :n_full] = seq[:, :n_full * mb].unflatten(1, (n_full, mb))
        if rem:
            view[:, s, n_full, :rem] = seq[:, n_full * mb:]
            view[:, s, n_full, rem:] = 0
    return X.view(n, B * S * H, *mid, mb, F)


def _to_tokens(Y: Tensor, B: int, L: int, orders: tuple[bool, ...]) -> Tensor:
    """(n, B·S·H, *mid, b, F) in scan order → (B, L, S, *mid·H·F) in image order (one gather)."""
    n, _, *mid, mb, F = Y.shape
    nm, S = len(mid), len(orders)
    Y = Y.view(n, B, S, -1, *mid, mb, F).permute(1, 2, 0, 4 + nm, *range(4, 4 + nm), 3, 5 + nm)
    Y = Y.reshape(B, S * n * mb, -1)                                 # (B, S·Lp, *mid·H·F)
    if orders == (False,):
        return Y[:, :L, None]
    return Y.index_select(1, _image_index(L, mb, orders, str(Y.device))).view(B, L, S, -1)


def _prepare(qkv: Tensor, lr: Tensor, spec: ScanSpec, dtype: torch.dtype) -> tuple[Tensor, Tensor, tuple | None]:
    """(B,L,3D), (B,L,H) in image order → X (n,N,3,b,F) with RoPE on Q and K, lr (n,N,b,1), RoPE tables."""
    B, L, _ = qkv.shape
    H, mb = spec.num_heads, spec.mini_batch
    perm = reverse_patches_index(L, qkv.device) if any(spec.orders) else None

    def scan_orders(x: Tensor) -> list[Tensor]:
        return [x.index_select(1, perm) if rev else x for rev in spec.orders]

    X = _to_scan(scan_orders(qkv.reshape(B, L, 3, H, -1)), mb, dtype)
    lr_s = _to_scan(scan_orders(lr.reshape(B, L, H, 1)), mb, dtype)
    tables = None
    if spec.rope_theta is not None:
        tables = rope_tables(mb, X.shape[-1], spec.rope_theta, X.device, dtype)
        rope_(X[:, :, :2], *tables)
    return X, lr_s, tables


def _per_stream(p: Tensor, B: int) -> Tensor:
    """(G, …) parameter → (B·G, …): every sample starts from the same inner model."""
    return p.expand(B, *p.shape).reshape(B * p.shape[0], *p.shape[1:])


# ---------------------------------------------------------------- the autograd Function

class _TTTScan(torch.autograd.Function):
    """(qkv (B,L,3·H·F), lr (B,L,H)) → post-norm(scan) (B, L, S·H·F) in image order; saves only its inputs."""

    @staticmethod
    def forward(ctx, qkv, lr, w0, b0, ln_w, ln_b, tok, norm_w, norm_b, spec: ScanSpec):
        ctx.spec = spec
        ctx.save_for_backward(qkv, lr, w0, b0, ln_w, ln_b, tok, norm_w, norm_b)
        z = _forward_tokens(qkv, lr, w0, b0, ln_w, ln_b, tok, spec)                  # (B, L, S, D)
        B, L = qkv.shape[:2]
        return torch.nn.functional.layer_norm(z, z.shape[-1:], norm_w, norm_b, spec.norm_eps).reshape(B, L, -1)

    @staticmethod
    def backward(ctx, grad):
        qkv, lr, w0, b0, ln_w, ln_b, tok, norm_w, norm_b = ctx.saved_tensors
        spec, norm_grads = ctx.spec, []

        def through_post_norm(z: Tensor) -> Tensor:                 # z: the recomputed raw output
            z = z.contiguous()
            _, mean, rstd = torch.native_layer_norm(z, z.shape[-1:], norm_w, norm_b, spec.norm_eps)
            dz, *d_affine = torch.ops.aten.native_layer_norm_backward(
                grad.to(z.dtype).reshape(z.shape), z, z.shape[-1:], mean, rstd, norm_w, norm_b, [True, True, True])
            norm_grads.extend(d_affine)
            return dz

        grads = _scan_grads(spec, qkv, lr, w0, b0, ln_w, ln_b, tok, through_post_norm)
        return (*grads, *norm_grads, None)


def _scan_grads(spec: ScanSpec, qkv: Tensor, lr: Tensor, w0: Tensor, b0: Tensor, ln_w: Tensor, ln_b: Tensor,
                tok: Tensor, output_grad: Callable[[Tensor], Tensor]) -> tuple[Tensor, ...]:
    """Gradients of the scan's inputs (qkv, lr, w0, b0, ln_w, ln_b, tok): re-run the scan once (nothing was
    saved), get ∂L/∂(raw output) from ``output_grad(raw output (B, L, S, D))``, then the reverse sweep."""
    with torch.autocast(device_type=qkv.device.type, enabled=False):   # backward in the scan's dtype too
        return _scan_grads_fp(spec, qkv, lr, w0, b0, ln_w, ln_b, tok, output_grad)


def _scan_grads_fp(spec: ScanSpec, qkv: Tensor, lr: Tensor, w0: Tensor, b0: Tensor, ln_w: Tensor, ln_b: Tensor,
                   tok: Tensor, output_grad: Callable[[Tensor], Tensor]) -> tuple[Tensor, ...]:
    B, L, _ = qkv.shape
    S, H = len(spec.orders), spec.num_heads
    X, lr_s, tables = _prepare(qkv, lr, spec, w0.dtype)
    params = [_per_stream(p, B) for p in (w0, b0[:, None], ln_w[:, None], ln_b[:, None])]
    out, kept = _scan_forward(X, lr_s, tok, *params, spec.compile, keep=True)
    grad = output_grad(_to_tokens(out, B, L, spec.orders)).reshape(B, L, S, H, -1)
    perm = reverse_patches_index(L, qkv.device) if any(spec.orders) else None
    g = _to_scan([grad[:, :, s].index_select(1, perm) if rev else grad[:, :, s] for s, rev in enumerate(spec.orders)],
                 spec.mini_batch, w0.dtype)
    dX, dlr, dtok, dw0, db0, dlnw, dlnb = _scan_backward(g, X, lr_s, tok, *params, kept, spec.compile)
    if tables is not None:                                           # RoPE's transpose on ∂L/∂Q, ∂L/∂K
        rope_(dX[:, :, :2], tables[0], -tables[1])
    dqkv = _to_tokens(dX, B, L, spec.orders).sum(2)
    dlr = _to_tokens(dlr, B, L, spec.orders).sum(2)
    G = w0.shape[0]

    def per_param(d: Tensor) -> Tensor:
        return d.reshape(B, G, *d.shape[1:]).sum(0)

    return (dqkv.reshape(qkv.shape).to(qkv.dtype), dlr.reshape(lr.shape).to(lr.dtype), per_param(dw0),
            per_param(db0).reshape(b0.shape), per_param(dlnw), per_param(dlnb), dtok)


def _forward_tokens(qkv: Tensor, lr: Tensor, w0: Tensor, b0: Tensor, ln_w: Tensor, ln_b: Tensor, tok: Tensor,
                    spec: ScanSpec) -> Tensor:
    """The scan's raw output (B, L, S, H·F) in image order."""
    B, L, _ = qkv.shape
    X, lr_s, _ = _prepare(qkv, lr, spec, w0.dtype)
    params = [_per_stream(p, B) for p in (w0, b0[:, None], ln_w[:, None], ln_b[:, None])]
    out, _ = _scan_forward(X, lr_s, tok, *params, spec.compile)
    return _to_tokens(out, B, L, spec.orders)


# ---------------------------------------------------------------- public entry points

def ttt_scan(qkv: Tensor, lr: Tensor, w0: Tensor, b0: Tensor, ln_weight: Tensor, ln_bias: Tensor, tok: Tensor,
             spec: ScanSpec, norm_weight: Tensor | None = None, norm_bias: Tensor | None = None) -> Tensor:
    """TTT-Linear over every direction of ``spec`` at once, from the fused projection, then the post-norm.

    Args:
        qkv: (B, L, 3·H·F) = [Q | K | V], heads contiguous inside each (timm ``Attention.qkv`` layout).
        lr: (B, L, H) per-token inner learning rate.
        w0, b0, ln_weight, ln_bias: (S·H, F, F), (S·H, F), (S·H, F), (S·H, F) — direction-major.
        tok: (mini_batch,) token scale.
        norm_weight, norm_bias: (H·F,) the post-norm (LayerNorm over each direction's H·F features, eps
            ``spec.norm_eps``); None: the scan's output as is (weight 1, bias 0 and eps 0 would not be exact).
    Returns:
        (B, L, S·H·F) in the parameters' dtype (float32, or float64 for a float64 model): direction-major,
        every direction in image order. Any input dtype is accepted (bf16 under autocast).
    """
    if norm_weight is None:
        return _TTTScanRaw.apply(qkv, lr, w0, b0, ln_weight, ln_bias, tok.to(w0.dtype), spec)
    return _TTTScan.apply(qkv, lr, w0, b0, ln_weight, ln_bias, tok.to(w0.dtype), norm_weight, norm_bias, spec)


class _TTTScanRaw(torch.autograd.Function):
    """:class:`_TTTScan` without the post-norm (the plain TTT-Linear output, for tests and reuse)."""

    @staticmethod
    def forward(ctx, qkv, lr, w0, b0, ln_w, ln_b, tok, spec: ScanSpec):
        ctx.spec = spec
        ctx.save_for_backward(qkv, lr, w0, b0, ln_w, ln_b, tok)
        return _forward_tokens(qkv, lr, w0, b0, ln_w, ln_b, tok, spec).reshape(*qkv.shape[:2], -1)

    @staticmethod
    def backward(ctx, grad):
        return (*_scan_grads(ctx.spec, *ctx.saved_tensors, lambda z: grad.to(z.dtype)), None)


def ttt_linear_fast(q: Tensor, k: Tensor, v: Tensor, w0: Tensor, b0: Tensor, ln_weight: Tensor, ln_bias: Tensor,
                    lr: Tensor, mini_batch_size: int, token_scale: Tensor | None = None) -> Tensor:
    """Drop-in for :func:`~au_ttt.model.ttt.ttt_linear` (same arguments, (B, H, L, F) result), through the
    memory-lean Function; used to test it against the plain dual form."""
    B, H, L, F = q.shape
    tok = default_token_scale(mini_batch_size, q.device, q.dtype) if token_scale is None else token_scale
    if tok.shape != (mini_batch_size,):
        raise ValueError(f"token_scale must have shape ({mini_batch_size},), got {tuple(tok.shape)}")
    qkv = torch.stack([q, k, v], 2).permute(0, 3, 2, 1, 4).reshape(B, L, 3 * H * F)   # (B,L,[3,H,F])
    out = ttt_scan(qkv, lr.transpose(1, 2), w0, b0, ln_weight, ln_bias, tok,
                   ScanSpec(H, mini_batch_size, (False,), None))
    return out.view(B, L, H, F).transpose(1, 2)
