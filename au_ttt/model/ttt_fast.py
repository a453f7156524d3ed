"""TTT-Linear scan as one autograd Function: the dual form's results, a fraction of its memory and operations.

Why: autograd through :func:`au_ttt.model.ttt.ttt_linear` keeps every mini-batch step's intermediates for
backward, and a step-by-step scan dispatches tens of small operations per mini-batch. This module computes
the same function with the same math:

1. The autograd Function saves only its inputs (the fused Q/K/V projection and the η gate). Backward re-runs
   the forward sweep, then one reverse sweep carries ∂L/∂W_i, ∂L/∂b_i (the scan core's hand-derived
   vector-Jacobian product).
2. The scan core — only the sequential W-update chain — runs on one of three backends with one interface
   (``forward(X, coef, e, W0, b0, ln_w, ln_b, keep)``, ``backward(grad, …, kept)``): the fused PyTorch loop of
   :mod:`au_ttt.model.ttt_fused` (CPU default), the same wrapped in ``torch.compile`` (``backend="compiled"``)
   or one Triton program per stream (:mod:`au_ttt.model.ttt_triton`, CUDA default). Everything else — scan
   layout, RoPE, tril(η ∘ (QKᵀ + 1)) of every mini-batch, the chain rule through it — is a handful of batched
   operations per call, outside the loop.
3. A trailing remainder of L mod b tokens (the CLS token at a row mini-batch) is zero-padded to a full
   mini-batch with η = 0: padded tokens come after every real one, so tril(·) and η = 0 keep them out of
   the real outputs, and the last mini-batch's update of W is never read. Results equal the plain dual
   form's, whose remainder runs with tok[:r].
4. Scan directions (Bi-TTT, eq. 6) and heads are independent streams N = B·S·H of one scan; one gather puts
   every direction's tokens in scan order (reversed patches, CLS last, zero padding) and one scatter-add
   brings the gradients back, so nothing per direction is stored.

Layout: (n, N, 3, b, F) — n mini-batches, streams, Q/K/V, mini-batch size, head dim; the step axis first
so that each step's slice is contiguous. ``tests/test_ttt_fast.py`` checks outputs and every gradient
against autograd through the plain dual form to 1e-10 in float64, and ``gradcheck``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from au_ttt.model import ttt_fused
from au_ttt.model.rope import rope_, rope_tables
from au_ttt.model.ttt import default_token_scale

__all__ = ["Backend", "ScanSpec", "resolve_backend", "reverse_patches_index", "ttt_linear_fast", "ttt_scan"]

Backend = Literal["auto", "eager", "compiled", "triton"]
COMPILE_BACKEND = "inductor"   # torch.compile backend of ``backend="compiled"`` (tests trace with "aot_eager")


@dataclass(frozen=True)
class ScanSpec:
    """What one call scans: heads, mini-batch, directions (``True`` = reversed patches, CLS last), RoPE, and
    which backend runs the scan core (``"auto"``: Triton on CUDA when it imports, else the fused eager loop)."""

    num_heads: int
    mini_batch: int
    orders: tuple[bool, ...] = (False,)
    rope_theta: float | None = 10000.0   # None: no RoPE
    backend: Backend = "auto"
    norm_eps: float = 1e-6               # the post-norm's epsilon, when one is given


def reverse_patches_index(num_tokens: int, device=None) -> Tensor:
    """Permutation [J-1, …, 0, J]: patches reversed, CLS (last) kept last. It is its own inverse."""
    return torch.cat([torch.arange(num_tokens - 2, -1, -1, device=device),
                      torch.tensor([num_tokens - 1], device=device)])


# ---------------------------------------------------------------- backends of the scan core

def resolve_backend(backend: Backend, device: torch.device, head_dim: int, dtype: torch.dtype) -> str:
    """``"auto"`` → ``"triton"`` on CUDA when Triton imports and takes the shape and dtype (float32, head dim a
    power of two ≥ 16), else ``"eager"``; any other choice as given."""
    if backend != "auto":
        return backend
    if device.type == "cuda":
        try:
            from au_ttt.model import ttt_triton
        except ImportError:                                          # no Triton here: the PyTorch loop
            return "eager"
        if ttt_triton.available() and ttt_triton.supports(head_dim, dtype):
            return "triton"
    return "eager"


def _core(backend: str):
    """The module whose ``scan_forward``/``scan_backward`` run the sequential part."""
    if backend == "triton":
        from au_ttt.model import ttt_triton

        return ttt_triton
    return ttt_fused


# ---------------------------------------------------------------- token layout ↔ scan layout

@functools.cache
def _layout(L: int, mb: int, orders: tuple[bool, ...], device: str) -> tuple[Tensor, Tensor, Tensor]:
    """Index tensors that move rows between image order and scan order, cached per shape (Lp = n·b rows per
    direction; row index L, resp. L·S, is the zero row appended for padding):

    rows (S·Lp,): the token each scan row reads; grad_rows (S·Lp,): its (token, direction) row in a
    (B, L·S, ·) tensor; image (L·S,): the scan row of each (token, direction), for the output.
    """
    n = -(-L // mb)
    S, pad = len(orders), n * mb - L
    perm = reverse_patches_index(L)                                  # its own inverse
    pos = [perm if rev else torch.arange(L) for rev in orders]
    rows = torch.cat([torch.cat([p, torch.full((pad,), L)]) for p in pos])
    grad_rows = torch.cat([torch.cat([p * S + s, torch.full((pad,), L * S)]) for s, p in enumerate(pos)])
    image = torch.stack([s * n * mb + p for s, p in enumerate(pos)], dim=1).flatten()
    return rows.to(device), grad_rows.to(device), image.to(device)


def _gather(x: Tensor, rows: Tensor) -> Tensor:
    """(B, M, C) → (B, len(rows), C): rows of x with a zero row appended at index M."""
    return F.pad(x, (0, 0, 0, 1)).index_select(1, rows)


def _to_scan(x: Tensor, rows: Tensor, S: int, mb: int, H: int, mid: int) -> Tensor:
    """(B, M, mid·H·F) gathered by ``rows`` → (n, B·S·H, mid, b, F) in scan order (one copy)."""
    B, C = x.shape[0], x.shape[-1]
    n, F_ = rows.numel() // (S * mb), C // (mid * H)
    x = _gather(x, rows).view(B, S, n, mb, mid, H, F_).permute(2, 0, 1, 5, 4, 3, 6)
    return x.reshape(n, B * S * H, mid, mb, F_).contiguous()


def _to_tokens(Y: Tensor, image: Tensor, B: int, S: int) -> Tensor:
    """(n, B·S·H, b, F) in scan order → (B, L, S, H·F) in image order (one gather)."""
    n, _, mb, F_ = Y.shape
    Y = Y.view(n, B, S, -1, mb, F_).permute(1, 2, 0, 4, 3, 5).reshape(B, S * n * mb, -1)
    return Y.index_select(1, image).view(B, image.numel() // S, S, -1)


def _scatter_to_tokens(Y: Tensor, rows: Tensor, B: int, S: int, L: int) -> Tensor:
    """The transpose of :func:`_to_scan`: (n, B·S·H, mid, b, F) → (B, L, mid·H·F), directions summed."""
    n, _, mid, mb, F_ = Y.shape
    Y = Y.view(n, B, S, -1, mid, mb, F_).permute(1, 2, 0, 5, 4, 3, 6).reshape(B, S * n * mb, -1)
    return Y.new_zeros(B, L + 1, Y.shape[-1]).index_add_(1, rows, Y)[:, :L]


def _per_stream(p: Tensor, B: int) -> Tensor:
    """(G, …) parameter → (B·G, …): every sample starts from the same inner model."""
    return p.repeat(B, *([1] * (p.dim() - 1)))


# ---------------------------------------------------------------- the scan between token layouts

def _coef(X: Tensor, lr: Tensor, tok: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """η_ij = tok_i·lr_j, QKᵀ + 1 and their causal product tril(η ∘ (QKᵀ + 1)), all (n,N,b,b)."""
    eta = tok[:, None] * lr.mT
    qk1 = torch.bmm(X[:, :, 0].flatten(0, 1), X[:, :, 1].flatten(0, 1).mT).add_(1.0).view(eta.shape)
    return eta, qk1, torch.tril(eta * qk1)


def _prepare(qkv: Tensor, lr: Tensor, w0: Tensor, b0: Tensor, ln_w: Tensor, ln_b: Tensor, rows: Tensor,
             cos: Tensor | None, sin: Tensor | None, S: int, H: int, mb: int) -> tuple[Tensor, ...]:
    """Scan-layout inputs of the core: X (n,N,3,b,F) with RoPE on Q and K, lr (n,N,b,1), per-stream params."""
    dtype, B = w0.dtype, qkv.shape[0]
    X = _to_scan(qkv.to(dtype), rows, S, mb, H, 3)
    lr_s = _to_scan(lr.to(dtype), rows, S, mb, H, 1).view(*X.shape[:2], mb, 1)
    if cos is not None:
        rope_(X[:, :, :2], cos, sin)
    params = [_per_stream(p, B) for p in (w0, b0[:, None], ln_w[:, None], ln_b[:, None])]
    return X, lr_s, *params


def _scan_out(qkv: Tensor, lr: Tensor, w0: Tensor, b0: Tensor, ln_w: Tensor, ln_b: Tensor, tok: Tensor,
              norm_w: Tensor | None, norm_b: Tensor | None, rows: Tensor, image: Tensor, cos: Tensor | None,
              sin: Tensor | None, *, spec: ScanSpec, backend: str) -> Tensor:
    """Forward: (B, L, 3·H·F), (B, L, H) → (B, L, S·H·F), post-normed when ``norm_w`` is given."""
    B, L, _ = qkv.shape
    S = len(spec.orders)
    X, lr_s, W0, b0_, lnw, lnb = _prepare(qkv, lr, w0, b0, ln_w, ln_b, rows, cos, sin, S, spec.num_heads,
                                          spec.mini_batch)
    out, _ = _core(backend).scan_forward(X, _coef(X, lr_s, tok)[2], tok[-1] * lr_s, W0, b0_, lnw, lnb)
    z = _to_tokens(out, image, B, S)                                 # (B, L, S, D)
    if norm_w is not None:
        z = F.layer_norm(z, z.shape[-1:], norm_w, norm_b, spec.norm_eps)
    return z.reshape(B, L, -1)


def _scan_grads(grad: Tensor, qkv: Tensor, lr: Tensor, w0: Tensor, b0: Tensor, ln_w: Tensor, ln_b: Tensor,
                tok: Tensor, norm_w: Tensor | None, norm_b: Tensor | None, rows: Tensor, grad_rows: Tensor,
                image: Tensor, cos: Tensor | None, sin: Tensor | None, *, spec: ScanSpec,
                backend: str) -> tuple[Tensor | None, ...]:
    """Backward: re-run the scan (nothing was saved), the post-norm's backward, then the reverse sweep and the
    chain rule through coef = tril(η ∘ (QKᵀ + 1)), e = tok_{b-1}·lr, RoPE and the layout.

    Returns ∂L/∂(qkv, lr, w0, b0, ln_w, ln_b, tok, norm_w, norm_b).
    """
    B, L, _ = qkv.shape
    S, H, mb = len(spec.orders), spec.num_heads, spec.mini_batch
    core = _core(backend)
    X, lr_s, *params = _prepare(qkv, lr, w0, b0, ln_w, ln_b, rows, cos, sin, S, H, mb)
    eta, qk1, coef = _coef(X, lr_s, tok)
    e = tok[-1] * lr_s
    out, kept = core.scan_forward(X, coef, e, *params, keep=True)
    grad = grad.to(w0.dtype).reshape(B, L, S, -1)
    d_norm_w = d_norm_b = None
    if norm_w is not None:                                           # through the post-norm
        z = _to_tokens(out, image, B, S).contiguous()
        _, mean, rstd = torch.native_layer_norm(z, z.shape[-1:], norm_w, norm_b, spec.norm_eps)
        grad, d_norm_w, d_norm_b = torch.ops.aten.native_layer_norm_backward(
            grad, z, z.shape[-1:], mean, rstd, norm_w, norm_b, [True, True, True])
    g = _to_scan(grad.reshape(B, L * S, -1), grad_rows, S, mb, H, 1).squeeze(2)
    dX, dcoef, de, dw0, db0, dlnw, dlnb = core.scan_backward(g, X, coef, e, *params, kept)
    deta, dqk = dcoef * qk1, dcoef * eta                             # through coef = tril(η ∘ (QKᵀ + 1))
    dX[:, :, 0] += dqk @ X[:, :, 1]
    dX[:, :, 1] += dqk.mT @ X[:, :, 0]
    dtok = (deta * lr_s.mT).sum((0, 1, 3))                           # (b,)
    dtok = torch.cat([dtok[:-1], dtok[-1:] + (de * lr_s).sum()])     # e = tok_{b-1}·lr
    dlr = (deta * tok[:, None]).sum(-2).unsqueeze(-1) + tok[-1] * de
    if cos is not None:                                              # RoPE's transpose on ∂L/∂Q, ∂L/∂K
        rope_(dX[:, :, :2], cos, -sin)
    dqkv = _scatter_to_tokens(dX, rows, B, S, L)
    dlr = _scatter_to_tokens(dlr.view(*dlr.shape[:2], 1, mb, 1), rows, B, S, L)
    G = w0.shape[0]

    def per_param(d: Tensor) -> Tensor:
        return d.reshape(B, G, *d.shape[1:]).sum(0)

    return (dqkv.to(qkv.dtype), dlr.to(lr.dtype), per_param(dw0), per_param(db0).reshape(b0.shape),
            per_param(dlnw), per_param(dlnb), dtok, d_norm_w, d_norm_b)


@functools.cache
def _functions(spec: ScanSpec, backend: str) -> tuple[Callable, Callable]:
    """(forward, backward) for one spec and backend; ``"compiled"`` wraps both whole functions — layout, the
    unrolled loop, the chain rule — in ``torch.compile`` (static shapes, one graph each; inductor caches the
    compiled code on disk), running the same eager code where a dispatch mode is active (dynamo does not run
    there: operation counting) or, with a warning, from the first time compiling fails."""
    core = "eager" if backend == "compiled" else backend
    fwd = functools.partial(_scan_out, spec=spec, backend=core)
    bwd = functools.partial(_scan_grads, spec=spec, backend=core)
    if backend != "compiled":
        return fwd, bwd
    compiled = [torch.compile(f, fullgraph=True, dynamic=False, backend=COMPILE_BACKEND) for f in (fwd, bwd)]
    failed: list[str] = []

    def pick(eager: Callable, comp: Callable) -> Callable:
        def run(*args):
            if failed or torch._C._len_torch_dispatch_stack():
                return eager(*args)
            try:
                return comp(*args)
            except Exception as err:  # no C++ compiler, unsupported platform …: the same function, eagerly
                failed.append(repr(err))
                warnings.warn(f"torch.compile of the TTT scan failed ({type(err).__name__}: {str(err)[:300]}); "
                              "running it eagerly", RuntimeWarning, stacklevel=2)
                return eager(*args)
        return run

    return pick(fwd, compiled[0]), pick(bwd, compiled[1])


def _aux(spec: ScanSpec, qkv: Tensor, dtype: torch.dtype) -> tuple[Tensor | None, ...]:
    """The cached index tensors and RoPE tables of this call: rows, grad_rows, image, cos, sin."""
    rows, grad_rows, image = _layout(qkv.shape[1], spec.mini_batch, spec.orders, str(qkv.device))
    F_ = qkv.shape[-1] // (3 * spec.num_heads)
    cos = sin = None
    if spec.rope_theta is not None:
        cos, sin = rope_tables(spec.mini_batch, F_, spec.rope_theta, qkv.device, dtype)
    return rows, grad_rows, image, cos, sin


# ---------------------------------------------------------------- the autograd Function

class _TTTScan(torch.autograd.Function):
    """(qkv (B,L,3·H·F), lr (B,L,H)) → [post-norm](scan) (B, L, S·H·F) in image order; saves only its inputs."""

    @staticmethod
    def forward(ctx, qkv, lr, w0, b0, ln_w, ln_b, tok, norm_w, norm_b, spec: ScanSpec):
        backend = resolve_backend(spec.backend, qkv.device, w0.shape[-1], w0.dtype)
        ctx.spec, ctx.backend = spec, backend
        ctx.save_for_backward(qkv, lr, w0, b0, ln_w, ln_b, tok, norm_w, norm_b)
        rows, _, image, cos, sin = _aux(spec, qkv, w0.dtype)
        return _functions(spec, backend)[0](qkv, lr, w0, b0, ln_w, ln_b, tok, norm_w, norm_b, rows, image, cos, sin)

    @staticmethod
    def backward(ctx, grad):
        inputs = ctx.saved_tensors
        with torch.autocast(device_type=grad.device.type, enabled=False):   # backward in the scan's dtype too
            grads = _functions(ctx.spec, ctx.backend)[1](grad, *inputs, *_aux(ctx.spec, inputs[0], inputs[2].dtype))
        return (*grads, None)


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
    return _TTTScan.apply(qkv, lr, w0, b0, ln_weight, ln_bias, tok.to(w0.dtype), norm_weight, norm_bias, spec)


def ttt_linear_fast(q: Tensor, k: Tensor, v: Tensor, w0: Tensor, b0: Tensor, ln_weight: Tensor, ln_bias: Tensor,
                    lr: Tensor, mini_batch_size: int, token_scale: Tensor | None = None,
                    backend: Backend = "auto") -> Tensor:
    """Drop-in for :func:`~au_ttt.model.ttt.ttt_linear` (same arguments, (B, H, L, F) result), through the
    memory-lean Function; used to test it against the plain dual form."""
    B, H, L, F_ = q.shape
    tok = default_token_scale(mini_batch_size, q.device, q.dtype) if token_scale is None else token_scale
    if tok.shape != (mini_batch_size,):
        raise ValueError(f"token_scale must have shape ({mini_batch_size},), got {tuple(tok.shape)}")
    qkv = torch.stack([q, k, v], 2).permute(0, 3, 2, 1, 4).reshape(B, L, 3 * H * F_)   # (B,L,[3,H,F])
    out = ttt_scan(qkv, lr.transpose(1, 2), w0, b0, ln_weight, ln_bias, tok,
                   ScanSpec(H, mini_batch_size, (False,), None, backend))
    return out.view(B, L, H, F_).transpose(1, 2)
