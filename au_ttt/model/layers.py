"""Token mixers of the AU-TTT block: TTT-Linear, Bi-TTT (eq. 6), AU RoI TTT (eq. 7), MSP, linear baseline.

Token order everywhere is the paper's eq. 5: J patch tokens in raster order, then the CLS token last.

Design choices the paper leaves open (each a constructor argument, defaulted from ``ModelConfig``):

* TTT-Linear is the Transformer-backbone flavour of the reference code (Q/K/V/O projections, no gate, no
  conv), with RoPE on Q/K at position ``i mod mini_batch`` as in both official flavours (ttt-lm-pytorch,
  ttt-lm-jax). Q/K/V are one fused ``qkv`` linear in timm ``Attention.qkv`` layout ([Q | K | V], heads contiguous), so
  ViT-S attention weights map onto it one to one.
* Bi-TTT weight sharing (``share``): ``"proj"`` (default) shares the Q/K/V/O projections, the η gate,
  the token-position scale and the post-norm between the two scans and gives each direction its own
  inner model (W0, b0, inner LN). This mirrors Vision Mamba's bidirectional mixer, which shares its
  in/out projections and keeps the scan parameters per direction (hustvl/Vim ``mamba_simple.py``).
  ``"none"`` duplicates everything; ``"all"`` runs one layer twice (ttt-video-dit style).
* The scans of both directions run as one batched scan (directions stacked as extra heads), which
  halves the number of sequential inner steps.

Two implementations of the same function (``impl``): ``"fast"`` (default) runs the scan as the memory-lean
autograd Function of :mod:`au_ttt.model.ttt_fast` — its sequential core on the ``backend`` chosen per layer
(``auto``: one Triton program per stream on CUDA, the fused PyTorch loop elsewhere; ``compiled``: that loop
through torch.compile) — and, when there are more tokens than channels, folds the per-direction output
projections into Bi-TTT's ``proj`` (Linear(Cat[O·a; O·b]) = [P₁O | P₂O]·Cat[a; b]);
``"reference"`` is the plain dual form of :mod:`au_ttt.model.ttt` through autograd, kept readable as the
oracle the tests compare the fast path with (outputs and every gradient, float64).
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from au_ttt.model.rope import rope, rope_tables
from au_ttt.model.ttt import ttt_linear
from au_ttt.model.ttt_fast import Backend, ScanSpec, reverse_patches_index, ttt_scan

__all__ = ["AURoITTT", "BiTTT", "LinearMixer", "MultiScalePerception", "TTTLinear", "reverse_patches_index",
           "set_scan_backend", "set_ttt_impl"]

BiShare = Literal["none", "proj", "all"]
Impl = Literal["fast", "reference"]


@functools.lru_cache(maxsize=64)
def _token_base(mini_batch: int, device: str) -> Tensor:
    """1/(i+1) for i < mini_batch (the token scale before the learnt offset τ), one constant per device."""
    return 1.0 / torch.arange(1, mini_batch + 1, device=device)


class TTTLinear(nn.Module):
    """TTT-Linear layer (Sun et al. 2024, Transformer-backbone flavour) with ``num_states`` inner models.

    ``forward`` runs one causal scan; :class:`BiTTT` uses :meth:`project` and :meth:`scan` to run several
    scan orders through the same projections.
    """

    def __init__(self, dim: int, num_heads: int, mini_batch_size: int, *, num_states: int = 1,
                 base_lr: float = 1.0, rope: bool = True, rope_theta: float = 10000.0, impl: Impl = "fast",
                 backend: Backend = "auto"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.mini_batch_size, self.num_states = mini_batch_size, num_states
        self.base_lr, self.rope, self.rope_theta = base_lr, rope, rope_theta
        self.impl: Impl = impl
        self.backend: Backend = backend                              # scan core: auto, eager, compiled, triton
        H, Fh = num_heads, self.head_dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)               # [Q | K | V] (timm Attention.qkv layout)
        self.o_proj = nn.Linear(dim, dim, bias=False)
        self.lr_weight = nn.Parameter(torch.empty(H, dim))           # η gate w_h
        self.lr_bias = nn.Parameter(torch.empty(H))                  # η gate β_h
        self.token_offset = nn.Parameter(torch.empty(mini_batch_size))  # τ_i in tok_i = max(0, 1/(i+1)+τ_i)
        self.W0 = nn.Parameter(torch.empty(num_states, H, Fh, Fh))
        self.b0 = nn.Parameter(torch.empty(num_states, H, Fh))
        self.ln_weight = nn.Parameter(torch.empty(num_states, H, Fh))
        self.ln_bias = nn.Parameter(torch.empty(num_states, H, Fh))
        self.post_norm = nn.LayerNorm(dim, eps=1e-6)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialisation of the reference code (ttt-lm-pytorch ``TTTBase``); Q, K, V, O in that order."""
        for lin in (self.qkv, self.o_proj):
            nn.init.normal_(lin.weight, std=0.02)
        nn.init.normal_(self.lr_weight, std=0.02)
        nn.init.zeros_(self.lr_bias)
        nn.init.zeros_(self.token_offset)
        nn.init.normal_(self.W0, std=0.02)
        nn.init.zeros_(self.b0)
        nn.init.ones_(self.ln_weight)
        nn.init.zeros_(self.ln_bias)
        self.post_norm.reset_parameters()

    def token_scale(self) -> Tensor:
        base = _token_base(self.mini_batch_size, str(self.token_offset.device))
        return torch.clamp_min(base + self.token_offset, 0.0)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, L, D) → fused q|k|v (B, L, 3D) and the per-token inner lr η = base_lr·σ(x·w + β)/F (B, L, H)."""
        lr = torch.sigmoid(F.linear(x, self.lr_weight, self.lr_bias)) * (self.base_lr / self.head_dim)
        return self.qkv(x), lr

    def scan(self, qkv: Tensor, lr: Tensor, states: list[int], orders: tuple[bool, ...]) -> Tensor:
        """One scan per entry of ``orders`` (True = reversed patches, CLS last), direction s with inner model
        ``states[s]``, each followed by the post-norm: (B, L, 3D), (B, L, H) → (B, L, S·D), every direction in
        image order.

        The inner loop runs in float32 (float64 for a float64 model) with autocast off: the W/b state must
        not drift in bf16 (ttt-lm-pytorch keeps it fp32 too). The fast path applies the post-norm inside its
        Function, so the scan's raw output is not kept for backward.
        """
        dtype = torch.promote_types(self.W0.dtype, torch.float32)
        params = (self.W0, self.b0, self.ln_weight, self.ln_bias)
        if states == list(range(self.num_states)):                   # every inner model in order: one view
            inner = [p.flatten(0, 1) for p in params]
        else:
            inner = [torch.cat([p[s] for s in states]) if len(states) > 1 else p[states[0]] for p in params]
        w0, b0, ln_w, ln_b = (p.to(dtype) for p in inner)
        tok = self.token_scale().to(dtype)
        with torch.autocast(device_type=qkv.device.type, enabled=False):
            if self.impl == "fast":
                spec = ScanSpec(self.num_heads, self.mini_batch_size, orders,
                                self.rope_theta if self.rope else None, self.backend, self.post_norm.eps)
                return ttt_scan(qkv, lr, w0, b0, ln_w, ln_b, tok, spec, self.post_norm.weight.to(dtype),
                                self.post_norm.bias.to(dtype))
            z = self._scan_reference(qkv.to(dtype), lr.to(dtype), w0, b0, ln_w, ln_b, tok, orders)
            B, L, _ = z.shape
            return self.post_norm(z.view(B, L, len(orders), self.dim)).view(B, L, -1)

    def _scan_reference(self, qkv, lr, w0, b0, ln_w, ln_b, tok, orders) -> Tensor:
        """The plain dual form through autograd: per direction permute, stack as heads, RoPE, scan, un-permute."""
        B, L, _ = qkv.shape
        H, mb = self.num_heads, self.mini_batch_size
        perm = reverse_patches_index(L, qkv.device)
        q, k, v = qkv.view(B, L, 3, H, self.head_dim).permute(2, 0, 3, 1, 4)   # (B, H, L, F) each
        lr = lr.transpose(1, 2)                                               # (B, H, L)
        stacked = [torch.cat([t[:, :, perm] if rev else t for rev in orders], dim=1) for t in (q, k, v, lr)]
        q, k, v, lr = stacked                                                 # (B, S·H, L, …)
        if self.rope:
            cos, sin = rope_tables(mb, self.head_dim, self.rope_theta, q.device, q.dtype)
            pos = torch.arange(L, device=q.device) % mb
            q, k = rope(q, cos[pos], sin[pos]), rope(k, cos[pos], sin[pos])
        z = ttt_linear(q, k, v, w0, b0, ln_w, ln_b, lr, mb, tok)             # (B, S·H, L, F)
        outs = [z[:, s * H:(s + 1) * H] for s in range(len(orders))]
        outs = [o[:, :, perm] if rev else o for o, rev in zip(outs, orders, strict=True)]
        return torch.cat(outs, dim=1).view(B, len(orders), H, L, -1).permute(0, 3, 1, 2, 4).reshape(B, L, -1)

    def forward(self, x: Tensor, reverse: bool = False) -> Tensor:
        """One scan (reversed patches, CLS last, when ``reverse``) → post-norm → output projection."""
        return self.o_proj(self.scan(*self.project(x), states=[0], orders=(reverse,)).to(x.dtype))


def set_scan_backend(model: nn.Module, backend: Backend) -> nn.Module:
    """Run every fast TTT layer of ``model`` on scan-core ``backend`` (auto, eager, compiled, triton)."""
    if backend not in ("auto", "eager", "compiled", "triton"):
        raise ValueError(f"backend must be auto, eager, compiled or triton, got {backend!r}")
    for m in model.modules():
        if isinstance(m, TTTLinear):
            m.backend = backend
    return model


def set_ttt_impl(model: nn.Module, impl: Impl) -> nn.Module:
    """Switch every TTT layer of ``model`` to the ``"fast"`` or the ``"reference"`` implementation."""
    if impl not in ("fast", "reference"):
        raise ValueError(f"impl must be 'fast' or 'reference', got {impl!r}")
    for m in model.modules():
        if isinstance(m, TTTLinear):
            m.impl = impl
    return model


class BiTTT(nn.Module):
    """Bidirectional TTT, paper eq. 6: Linear(Cat[TTT(Z); Reverse(TTT(reversed patches, CLS last))])."""

    def __init__(self, dim: int, num_heads: int, mini_batch_size: int, *, share: BiShare = "proj", **ttt_kw):
        super().__init__()
        if share not in ("none", "proj", "all"):
            raise ValueError(f"share must be 'none', 'proj' or 'all', got {share!r}")
        self.share = share
        self.ttt = TTTLinear(dim, num_heads, mini_batch_size, num_states=2 if share == "proj" else 1, **ttt_kw)
        self.ttt_bwd = TTTLinear(dim, num_heads, mini_batch_size, **ttt_kw) if share == "none" else None
        self.proj = nn.Linear(2 * dim, dim)

    def _normed(self, x: Tensor) -> tuple[Tensor, list[nn.Linear]]:
        """Post-normed scan outputs Cat[forward; backward] (B, L, 2D) in image order, and each half's O."""
        if self.ttt_bwd is not None:  # separate layers: separate projections, scans and post-norms
            halves = [layer.scan(*layer.project(x), states=[0], orders=(rev,)).to(x.dtype)
                      for layer, rev in ((self.ttt, False), (self.ttt_bwd, True))]
            return torch.cat(halves, dim=-1), [self.ttt.o_proj, self.ttt_bwd.o_proj]
        states = [0, 1] if self.share == "proj" else [0, 0]
        normed = self.ttt.scan(*self.ttt.project(x), states=states, orders=(False, True)).to(x.dtype)
        return normed, [self.ttt.o_proj, self.ttt.o_proj]

    def directions(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Forward-scan and re-aligned backward-scan outputs, each (B, L, D), in image order."""
        normed, outs = self._normed(x)
        fwd, bwd = normed.chunk(2, dim=-1)
        return outs[0](fwd), outs[1](bwd)

    def forward(self, x: Tensor) -> Tensor:
        B, L, D = x.shape
        if self.ttt.impl == "reference" or B * L <= D:
            return self.proj(torch.cat(self.directions(x), dim=-1))
        # N = B·L > D tokens: one (2D → D) GEMM with the folded weight costs 2ND² + 2D³ FLOPs instead of 4ND².
        normed, outs = self._normed(x)
        if outs[0] is outs[1]:   # one shared O: [P₁O | P₂O] is (P viewed as rows (d, s) of P_s) · O, one product
            w = (self.proj.weight.view(2 * D, D) @ outs[0].weight).view(D, 2 * D)
        else:
            w = torch.cat([self.proj.weight[:, :D] @ outs[0].weight, self.proj.weight[:, D:] @ outs[1].weight], dim=1)
        return F.linear(normed, w, self.proj.bias)


class MultiScalePerception(nn.Module):
    """MSP: depthwise 3×3 convolutions at several dilations on the patch grid, summed, GELU, pointwise 1×1.

    Depthwise-separable keeps the cost small: per block 9·D·J·len(dilations) + D²·J MACs, about 5 % of an
    AU-TTT ViT-S/16 block at 224 px (see ``au_ttt.model.flops``). The CLS token gets no MSP term. The grid
    is channels-last (the tokens' own layout) and the 1×1 convolution runs as the equal linear map on
    tokens, which avoids two transposes and CPU's slow im2col path for 1×1 kernels.
    """

    def __init__(self, dim: int, grid_size: tuple[int, int], dilations: tuple[int, ...] = (1, 3, 5)):
        super().__init__()
        self.grid_size = grid_size
        self.convs = nn.ModuleList(
            nn.Conv2d(dim, dim, 3, padding=d, dilation=d, groups=dim) for d in dilations)
        self.act = nn.GELU()
        self.pointwise = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        gh, gw = self.grid_size
        grid = x[:, :-1].unflatten(1, (gh, gw)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        y = self.act(sum(conv(grid) for conv in self.convs)).permute(0, 2, 3, 1).flatten(1, 2)   # (B, J, D)
        y = F.linear(y, self.pointwise.weight.flatten(1), self.pointwise.bias)
        return F.pad(y, (0, 0, 0, 1))                                    # CLS row: 0


class AURoITTT(nn.Module):
    """AU RoI TTT, paper eq. 7: mask-pool one token per AU, run TTT across the AUs, paint back.

    Pooling is the paper's mean over H'×W' of Z·Mask: t_a = Σ_p m_a(p) z_p / (H'W'). The N_AU output
    tokens are mapped back onto the grid with the same masks, g_p = Σ_a m_a(p) u_a / max(1, Σ_a m_a(p))
    (the transposed pooling, normalised only where masks overlap), so positions outside every AU region
    get 0; the CLS token gets the mean of the AU tokens. The TTT layer sees the AUs as one mini-batch,
    in the dataset's AU order. Masks come from landmarks only, never from labels.
    """

    def __init__(self, dim: int, num_heads: int, num_aus: int, **ttt_kw):
        super().__init__()
        self.num_aus = num_aus
        self.ttt = TTTLinear(dim, num_heads, mini_batch_size=num_aus, **ttt_kw)

    def forward(self, x: Tensor, masks: Tensor) -> Tensor:
        B, L, _ = x.shape
        m = masks.reshape(B, self.num_aus, L - 1).to(x.dtype)           # (B, A, J)
        tokens = m @ x[:, :-1] / (L - 1)                                 # (B, A, D) mean of Z·Mask
        u = self.ttt(tokens)                                             # (B, A, D)
        cover = m.sum(1).clamp_min(1.0)[..., None]                       # (B, J, 1)
        grid = m.transpose(1, 2) @ u / cover                             # (B, J, D)
        return torch.cat([grid, u.mean(1, keepdim=True)], dim=1)


class LinearMixer(nn.Module):
    """Table III baseline: the TTT layer replaced by a token-wise linear projection."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)

