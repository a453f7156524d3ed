"""TTT-Linear inner loop as pure functions: dual form (used by the model) and primal form (test oracle).

Math follows Sun et al., "Learning to (Learn at Test Time)" (arXiv 2407.04620), §2.7 and the
Transformer-backbone flavour of the reference code (test-time-training/ttt-lm-pytorch ``ttt.py``,
``TTTLinear.ttt``); re-derived in the paper's §2.7 notation. Per head the inner model is

    f(x; W, b) = x + LN(x W + b)

trained online on the reconstruction loss ``ℓ_j = ½‖LN(k_j W + b) − (v_j − k_j)‖²`` with one gradient
step per mini-batch; every gradient in a mini-batch is taken at the mini-batch's starting (W, b).
Token ``i`` of a mini-batch reads with

    W_i = W − tok_i Σ_{j≤i} lr_j k_jᵀ δ_j,   b_i = b − tok_i Σ_{j≤i} lr_j δ_j,   out_i = q_i + LN(q_i W_i + b_i)

where δ_j = ∂ℓ_j/∂z_j at z_j = k_j W + b. The dual form computes all ``out_i`` with matmuls and no
per-token W_i; the primal form materialises W_i and exists to check the dual form.

Shape legend: B batch, H heads, L tokens, F head dim, n mini-batches, b mini-batch size.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["default_token_scale", "ln_forward", "ln_l2_grad", "ttt_linear", "ttt_linear_primal"]

LN_EPS = 1e-6  # inner LayerNorm epsilon of the reference implementation


def default_token_scale(mini_batch_size: int, device=None, dtype=None) -> Tensor:
    """tok_i = 1/(i+1): token i averages the gradients of its mini-batch prefix (the reference code's token_idx)."""
    return 1.0 / torch.arange(1, mini_batch_size + 1, device=device, dtype=dtype)


def ln_forward(z: Tensor, weight: Tensor, bias: Tensor, eps: float = LN_EPS) -> Tensor:
    """LayerNorm over the last dim with per-head affine; weight/bias broadcast as (H, 1, F)."""
    return torch.nn.functional.layer_norm(z, z.shape[-1:], eps=eps) * weight + bias


def ln_l2_grad(z: Tensor, target: Tensor, weight: Tensor, bias: Tensor, eps: float = LN_EPS) -> Tensor:
    """Closed-form ∂/∂z of ½‖LN(z) − target‖² (summed over the last dim), per row.

    With x̂ = (z − μ)/σ and g = γ ∘ (γ ∘ x̂ + β − target):  δ = (F·g − Σg − x̂·Σ(g∘x̂)) / (F·σ).
    """
    f = z.shape[-1]
    var, mu = torch.var_mean(z, dim=-1, keepdim=True, correction=0)
    rstd = torch.rsqrt(var + eps)
    x_hat = (z - mu) * rstd
    g = weight * (weight * x_hat + bias - target)
    return (f * g - g.sum(-1, keepdim=True) - x_hat * (g * x_hat).sum(-1, keepdim=True)) * (rstd / f)


def _check_shapes(q: Tensor, k: Tensor, v: Tensor, w0: Tensor, b0: Tensor, lr: Tensor, mini_batch_size: int):
    if not (q.shape == k.shape == v.shape and q.dim() == 4):
        raise ValueError(f"q, k, v must share shape (B, H, L, F); got {q.shape}, {k.shape}, {v.shape}")
    B, H, L, F = q.shape
    if w0.shape != (H, F, F) or b0.shape != (H, F):
        raise ValueError(f"w0 must be (H, F, F)={(H, F, F)} and b0 (H, F)={(H, F)}; got {w0.shape}, {b0.shape}")
    if lr.shape != (B, H, L):
        raise ValueError(f"lr must be (B, H, L)={(B, H, L)}; got {tuple(lr.shape)}")
    if mini_batch_size < 1:
        raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")


def _dual_segment(
    q: Tensor, k: Tensor, v: Tensor, lr: Tensor, tok: Tensor,
    W: Tensor, b: Tensor, ln_w: Tensor, ln_b: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run consecutive mini-batches of equal size through the dual form.

    q, k, v: (B, H, n, b, F); lr: (B, H, n, b); tok: (b,); W: (B, H, F, F); b: (B, H, 1, F);
    ln_w, ln_b: (H, 1, F). Returns the outputs (B, H, n, b, F) and the final (W, b).
    """
    target = v - k                                                   # (B,H,n,b,F) reconstruction target
    # η_ij = tok_i · lr_j on j ≤ i. Folding the bias path in: Ẑ = QW + b − tril(η ∘ (QKᵀ + 1)) δ.
    eta = tok[:, None] * lr[..., None, :]                            # (B,H,n,b,b)
    coef = torch.tril(eta * (q @ k.transpose(-1, -2) + 1.0))         # (B,H,n,b,b) — all hoisted out of the scan
    eta_last = eta[..., -1, :, None]                                 # (B,H,n,b,1) = tok_{b-1} · lr_j
    b_tok = q.shape[3]
    qk = torch.cat([k, q], dim=3)                                    # (B,H,n,2b,F): one matmul with W per step
    outs = []
    for i in range(q.shape[2]):
        z = qk[:, :, i] @ W + b                                      # (B,H,2b,F) = [KW + b; QW + b]
        delta = ln_l2_grad(z[..., :b_tok, :], target[:, :, i], ln_w, ln_b)  # (B,H,b,F) ∂ℓ_j/∂z_j at start state
        z_hat = z[..., b_tok:, :] - coef[:, :, i] @ delta            # (B,H,b,F)
        outs.append(q[:, :, i] + ln_forward(z_hat, ln_w, ln_b))
        scaled = eta_last[:, :, i] * delta                           # (B,H,b,F)
        W = W - k[:, :, i].transpose(-1, -2) @ scaled                # (B,H,F,F) carry W_{b-1}
        b = b - scaled.sum(-2, keepdim=True)                         # (B,H,1,F) carry b_{b-1}
    return torch.stack(outs, dim=2), W, b


def ttt_linear(
    q: Tensor, k: Tensor, v: Tensor,
    w0: Tensor, b0: Tensor, ln_weight: Tensor, ln_bias: Tensor,
    lr: Tensor, mini_batch_size: int, token_scale: Tensor | None = None,
) -> Tensor:
    """TTT-Linear over a whole sequence in the dual form.

    Args:
        q, k, v: (B, H, L, F) test view, training view and label view of each token.
        w0, b0: (H, F, F), (H, F) learnable initial inner weights, shared across the batch.
        ln_weight, ln_bias: (H, F) inner LayerNorm affine.
        lr: (B, H, L) per-token inner learning rate, already scaled (base_lr·sigmoid(·)/F).
        mini_batch_size: tokens per inner GD step; a trailing remainder of L mod b tokens is run as one
            shorter mini-batch continuing from the last state, using token_scale[:r].
        token_scale: (mini_batch_size,) tok_i, default 1/(i+1).

    Returns:
        (B, H, L, F): q_i + LN(q_i W_i + b_i), where W_i already includes token i's own gradient.
    """
    _check_shapes(q, k, v, w0, b0, lr, mini_batch_size)
    B, H, L, F = q.shape
    mb = mini_batch_size
    tok = default_token_scale(mb, q.device, q.dtype) if token_scale is None else token_scale.to(q.dtype)
    if tok.shape != (mb,):
        raise ValueError(f"token_scale must have shape ({mb},), got {tuple(tok.shape)}")
    W = w0.to(q.dtype).expand(B, H, F, F).contiguous()
    b = b0.to(q.dtype)[None, :, None, :].expand(B, H, 1, F)
    ln_w, ln_b = ln_weight.to(q.dtype)[:, None, :], ln_bias.to(q.dtype)[:, None, :]  # (H,1,F)

    n_full, rem = divmod(L, mb)
    outs = []
    if n_full:
        cut = n_full * mb

        def split(x: Tensor) -> Tensor:
            return x[:, :, :cut].reshape(B, H, n_full, mb, *x.shape[3:])

        out, W, b = _dual_segment(split(q), split(k), split(v), split(lr), tok, W, b, ln_w, ln_b)
        outs.append(out.reshape(B, H, cut, F))
    if rem:
        def tail(x: Tensor) -> Tensor:
            return x[:, :, L - rem:].unsqueeze(2)

        out, _, _ = _dual_segment(tail(q), tail(k), tail(v), tail(lr), tok[:rem], W, b, ln_w, ln_b)
        outs.append(out.squeeze(2))
    return torch.cat(outs, dim=2)


def ttt_linear_primal(
    q: Tensor, k: Tensor, v: Tensor,
    w0: Tensor, b0: Tensor, ln_weight: Tensor, ln_bias: Tensor,
    lr: Tensor, mini_batch_size: int, token_scale: Tensor | None = None,
) -> Tensor:
    """Reference: the same computation with an explicit W_i per token (O(b·F²) memory; tests only).

    Gradients use autograd on the inner loss rather than :func:`ln_l2_grad`, so the two forms share no
    code beyond :func:`ln_forward`.
    """
    _check_shapes(q, k, v, w0, b0, lr, mini_batch_size)
    mb = mini_batch_size
    tok = default_token_scale(mb, q.device, q.dtype) if token_scale is None else token_scale.to(q.dtype)
    ln_w, ln_b = ln_weight.to(q.dtype), ln_bias.to(q.dtype)
    out = torch.empty_like(q)
    with torch.enable_grad():
        _primal_loop(q, k, v, w0, b0, ln_w, ln_b, lr, mb, tok, out)
    return out


def _primal_loop(q, k, v, w0, b0, ln_w, ln_b, lr, mb, tok, out) -> None:
    B, H, L, _ = q.shape
    for bi in range(B):
        for h in range(H):
            W, bb = w0[h].to(q.dtype).clone(), b0[h].to(q.dtype).clone()
            for start in range(0, L, mb):
                stop = min(start + mb, L)
                grads_W, grads_b = [], []
                for j in range(start, stop):  # gradients at the mini-batch's starting state
                    Wv = W.detach().requires_grad_(True)
                    bv = bb.detach().requires_grad_(True)
                    kj, vj = k[bi, h, j].detach(), v[bi, h, j].detach()
                    loss = 0.5 * (ln_forward(kj @ Wv + bv, ln_w[h], ln_b[h]) - (vj - kj)).pow(2).sum()
                    gW, gb = torch.autograd.grad(loss, (Wv, bv))
                    grads_W.append(lr[bi, h, j] * gW)
                    grads_b.append(lr[bi, h, j] * gb)
                acc_W, acc_b = torch.zeros_like(W), torch.zeros_like(bb)
                for i, j in enumerate(range(start, stop)):
                    acc_W, acc_b = acc_W + grads_W[i], acc_b + grads_b[i]
                    Wi, bi_ = W - tok[i] * acc_W, bb - tok[i] * acc_b
                    out[bi, h, j] = q[bi, h, j] + ln_forward(q[bi, h, j] @ Wi + bi_, ln_w[h], ln_b[h])
                W, bb = Wi, bi_
