"""TTT-Linear inner loop: dual form == explicit primal form, closed-form inner gradient == autograd."""

import pytest
import torch

from au_ttt.model.ttt import default_token_scale, ln_forward, ln_l2_grad, ttt_linear, ttt_linear_primal


def _random_problem(seed: int, B: int, H: int, L: int, F: int, mb: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return torch.randn(*shape, generator=g, dtype=dtype) * scale

    q, k, v = rnd(B, H, L, F), rnd(B, H, L, F), rnd(B, H, L, F)
    w0, b0 = rnd(H, F, F, scale=0.3), rnd(H, F, scale=0.1)
    ln_w, ln_b = 1 + rnd(H, F, scale=0.2), rnd(H, F, scale=0.1)
    lr = torch.sigmoid(rnd(B, H, L)) * 2.0 / F
    tok = torch.clamp_min(default_token_scale(mb, dtype=dtype) + rnd(mb, scale=0.1), 0.0)
    return q, k, v, w0, b0, ln_w, ln_b, lr, tok


@pytest.mark.parametrize(
    "seed,B,H,L,F,mb",
    [
        (0, 2, 3, 4 * 5 + 3, 8, 5),   # four full mini-batches + a remainder of 3
        (1, 1, 2, 14 * 3 + 1, 6, 14), # AU-TTT shape in small: 3 patch rows of 14 + the CLS token alone
        (2, 2, 1, 7, 4, 16),          # shorter than one mini-batch: the whole sequence is the remainder
        (3, 1, 2, 9, 5, 1),           # mini-batch 1 = plain online GD
    ],
)
def test_dual_equals_primal_float64(seed, B, H, L, F, mb):
    q, k, v, w0, b0, ln_w, ln_b, lr, tok = _random_problem(seed, B, H, L, F, mb)
    dual = ttt_linear(q, k, v, w0, b0, ln_w, ln_b, lr, mb, tok)
    primal = ttt_linear_primal(q, k, v, w0, b0, ln_w, ln_b, lr, mb, tok)
    assert dual.shape == (B, H, L, F)
    assert (dual - primal).abs().max().item() <= 1e-10


def test_default_token_scale_is_one_over_position():
    q, k, v, w0, b0, ln_w, ln_b, lr, _ = _random_problem(4, 1, 2, 11, 4, 4)
    explicit = ttt_linear(q, k, v, w0, b0, ln_w, ln_b, lr, 4, torch.tensor([1, 1 / 2, 1 / 3, 1 / 4],
                                                                              dtype=torch.float64))
    assert torch.equal(ttt_linear(q, k, v, w0, b0, ln_w, ln_b, lr, 4), explicit)


def test_inner_gradient_matches_autograd():
    g = torch.Generator().manual_seed(5)
    F = 7
    z = torch.randn(3, F, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(3, F, generator=g, dtype=torch.float64)
    w, b = 1 + 0.3 * torch.randn(F, generator=g, dtype=torch.float64), 0.2 * torch.randn(F, generator=g,
                                                                                       dtype=torch.float64)
    loss = 0.5 * (ln_forward(z, w, b) - target).pow(2).sum()
    (auto,) = torch.autograd.grad(loss, z)
    assert torch.allclose(ln_l2_grad(z.detach(), target, w, b), auto, atol=1e-12, rtol=0)

    # ∂ℓ/∂W = kᵀδ for z = kW + b
    k = torch.randn(1, F, generator=g, dtype=torch.float64)
    W = torch.randn(F, F, generator=g, dtype=torch.float64, requires_grad=True)
    t1 = torch.randn(1, F, generator=g, dtype=torch.float64)
    loss = 0.5 * (ln_forward(k @ W + b, w, b) - t1).pow(2).sum()
    (gW,) = torch.autograd.grad(loss, W)
    delta = ln_l2_grad((k @ W + b).detach(), t1, w, b)
    assert torch.allclose(k.T @ delta, gW, atol=1e-12, rtol=0)


def test_outer_gradients_are_correct():
    """The dual form is differentiable w.r.t. everything the outer loop learns (float64 gradcheck)."""
    q, k, v, w0, b0, ln_w, ln_b, lr, tok = _random_problem(6, 1, 1, 5, 3, 2)
    inputs = [t.clone().requires_grad_(True) for t in (q, k, v, w0, b0, ln_w, ln_b, lr, tok)]

    def fn(q, k, v, w0, b0, ln_w, ln_b, lr, tok):
        return ttt_linear(q, k, v, w0, b0, ln_w, ln_b, lr, 2, tok)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


def test_shape_errors_are_explicit():
    q, k, v, w0, b0, ln_w, ln_b, lr, tok = _random_problem(7, 1, 2, 6, 4, 3)
    with pytest.raises(ValueError, match="lr must be"):
        ttt_linear(q, k, v, w0, b0, ln_w, ln_b, lr[..., :-1], 3, tok)
    with pytest.raises(ValueError, match="token_scale"):
        ttt_linear(q, k, v, w0, b0, ln_w, ln_b, lr, 3, tok[:2])
