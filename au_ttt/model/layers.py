"""Token mixers of the AU-TTT block: TTT-Linear, Bi-TTT (eq. 6), AU RoI TTT (eq. 7), MSP, linear baseline.

Token order everywhere is the paper's eq. 5: J patch tokens in raster order, then the CLS token last.

Design choices the paper leaves open (each a constructor argument, defaulted from ``ModelConfig``):

* TTT-Linear is the Transformer-backbone flavour of the reference code (separate Q/K/V/O, no gate, no
  conv), with RoPE on Q/K at position ``i mod mini_batch`` as in both official flavours (ttt.md §1.4).
* Bi-TTT weight sharing (``share``): ``"proj"`` (default) shares the Q/K/V/O projections, the η gate,
  the token-position scale and the post-norm between the two scans and gives each direction its own
  inner model (W0, b0, inner LN). This mirrors Vision Mamba's bidirectional mixer, which shares its
  in/out projections and keeps the scan parameters per direction (hustvl/Vim ``mamba_simple.py``).
  ``"none"`` duplicates everything; ``"all"`` runs one layer twice (ttt-video-dit style).
* The scans of both directions run as one batched scan (directions stacked as extra heads), which
  halves the number of sequential inner steps.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from au_ttt.model.ttt import ttt_linear

__all__ = ["AURoITTT", "BiTTT", "LinearMixer", "MultiScalePerception", "TTTLinear", "reverse_patches_index"]

BiShare = Literal["none", "proj", "all"]


def reverse_patches_index(num_tokens: int, device=None) -> Tensor:
    """Permutation [J-1, …, 0, J]: patches reversed, CLS (last) kept last. It is its own inverse."""
    return torch.cat([torch.arange(num_tokens - 2, -1, -1, device=device),
                      torch.tensor([num_tokens - 1], device=device)])


def _rope(x: Tensor, mini_batch_size: int, theta: float) -> Tensor:
    """Rotary embedding at positions (i mod mini_batch_size), half-split convention. x: (B, H, L, F)."""
    L, F = x.shape[-2], x.shape[-1]
    half = F // 2
    pos = (torch.arange(L, device=x.device) % mini_batch_size).to(torch.float32)
    inv_freq = theta ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    ang = pos[:, None] * inv_freq[None, :]                           # (L, F/2)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:2 * half]
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return torch.cat([rotated, x[..., 2 * half:]], dim=-1) if F % 2 else rotated


class TTTLinear(nn.Module):
    """TTT-Linear layer (Sun et al. 2024, Transformer-backbone flavour) with ``num_states`` inner models.

    ``forward`` runs one causal scan; :class:`BiTTT` uses :meth:`project`, :meth:`scan` and
    :meth:`finish` to run several scan orders through the same projections.
    """

    def __init__(self, dim: int, num_heads: int, mini_batch_size: int, *, num_states: int = 1,
                 base_lr: float = 1.0, rope: bool = True, rope_theta: float = 10000.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.mini_batch_size, self.num_states = mini_batch_size, num_states
        self.base_lr, self.rope, self.rope_theta = base_lr, rope, rope_theta
        H, Fh = num_heads, self.head_dim
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
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
        """Initialisation of the reference code (ttt.md §1.3)."""
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.o_proj):
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
        base = 1.0 / torch.arange(1, self.mini_batch_size + 1, device=self.token_offset.device)
        return torch.clamp_min(base + self.token_offset, 0.0)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x (B, L, D) → q, k, v (B, H, L, F) and the per-token inner lr (B, H, L)."""
        B, L, _ = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.view(B, L, self.num_heads, self.head_dim).transpose(1, 2)

        gate = torch.einsum("bld,hd->bhl", x, self.lr_weight) + self.lr_bias[None, :, None]
        lr = self.base_lr * torch.sigmoid(gate) / self.head_dim
        return heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)), lr

    def scan(self, q: Tensor, k: Tensor, v: Tensor, lr: Tensor, states: list[int]) -> Tensor:
        """Run ``len(states)`` scans stacked on the head axis: q (B, S·H, L, F) → (B, S·H, L, F).

        The inner loop runs in float32 with autocast off: the W/b state must not drift in bf16
        (ttt.md §4.3).
        """
        w0 = torch.cat([self.W0[s] for s in states])
        b0 = torch.cat([self.b0[s] for s in states])
        ln_w = torch.cat([self.ln_weight[s] for s in states])
        ln_b = torch.cat([self.ln_bias[s] for s in states])
        with torch.autocast(device_type=q.device.type, enabled=False):
            q, k, v, lr = (t.float() for t in (q, k, v, lr))
            if self.rope:
                q = _rope(q, self.mini_batch_size, self.rope_theta)
                k = _rope(k, self.mini_batch_size, self.rope_theta)
            return ttt_linear(q, k, v, w0.float(), b0.float(), ln_w.float(), ln_b.float(), lr,
                              self.mini_batch_size, self.token_scale().float())

    def finish(self, z: Tensor) -> Tensor:
        """(B, H, L, F) → merge heads → post-norm → output projection → (B, L, D)."""
        B, _, L, _ = z.shape
        z = z.transpose(1, 2).reshape(B, L, self.dim)
        return self.o_proj(self.post_norm(z).to(self.o_proj.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return self.finish(self.scan(*self.project(x), states=[0]).to(x.dtype))


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

    def directions(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Forward-scan and re-aligned backward-scan outputs, each (B, L, D), in image order."""
        H = self.ttt.num_heads
        perm = reverse_patches_index(x.shape[1], x.device)
        if self.ttt_bwd is not None:  # separate layers: separate projections, separate scans
            fwd = self.ttt(x)
            bwd = self.ttt_bwd(x[:, perm])[:, perm]
            return fwd, bwd
        q, k, v, lr = self.ttt.project(x)                   # projections are per token: permute afterwards
        stacked = [torch.cat([t, t[:, :, perm]], dim=1) for t in (q, k, v, lr)]
        states = [0, 1] if self.share == "proj" else [0, 0]
        z = self.ttt.scan(*stacked, states=states).to(x.dtype)
        z_fwd, z_bwd = z[:, :H], z[:, H:, perm]             # re-align the backward scan to image order
        return self.ttt.finish(z_fwd), self.ttt.finish(z_bwd)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(torch.cat(self.directions(x), dim=-1))


class MultiScalePerception(nn.Module):
    """MSP: depthwise 3×3 convolutions at several dilations on the patch grid, summed, GELU, pointwise 1×1.

    Depthwise-separable keeps the cost small: per block 9·D·J·len(dilations) + D²·J MACs, about 5 % of an
    AU-TTT ViT-S/16 block at 224 px (see ``au_ttt.model.flops``). The CLS token gets no MSP term.
    """

    def __init__(self, dim: int, grid_size: tuple[int, int], dilations: tuple[int, ...] = (1, 3, 5)):
        super().__init__()
        self.grid_size = grid_size
        self.convs = nn.ModuleList(
            nn.Conv2d(dim, dim, 3, padding=d, dilation=d, groups=dim) for d in dilations)
        self.act = nn.GELU()
        self.pointwise = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, _, D = x.shape
        gh, gw = self.grid_size
        grid = x[:, :-1].transpose(1, 2).reshape(B, D, gh, gw)
        y = self.pointwise(self.act(sum(conv(grid) for conv in self.convs)))
        y = y.flatten(2).transpose(1, 2)
        return torch.cat([y, y.new_zeros(B, 1, D)], dim=1)


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

