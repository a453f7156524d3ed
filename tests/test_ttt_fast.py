"""The fast TTT scan (hand-written backward) equals autograd through the plain dual form, in float64.

Outputs and every gradient to 1e-10, gradcheck on small shapes, every Table III variant and Bi-TTT sharing
mode at model level, the remainder path (L mod b ≠ 0, CLS as a 1-token remainder, L < b), and what the
fast path keeps for backward (only its inputs).
"""

import pytest
import torch
from conftest import REPO
from test_ttt_math import _random_problem

from au_ttt.model.au_ttt import AUTTT
from au_ttt.model.layers import BiTTT, TTTLinear, set_ttt_impl
from au_ttt.model.ttt import ttt_linear
from au_ttt.model.ttt_fast import ScanSpec, ttt_linear_fast, ttt_scan
from au_ttt.settings import load_settings

TOL = 1e-10


@pytest.mark.parametrize(
    "seed,B,H,L,F,mb",
    [
        (0, 2, 3, 4 * 5 + 3, 8, 5),    # four full mini-batches + a remainder of 3
        (1, 1, 2, 14 * 3 + 1, 6, 14),  # 3 patch rows of 14 + the CLS token as a 1-token remainder
        (2, 2, 1, 7, 4, 16),           # shorter than one mini-batch: all remainder
        (3, 1, 2, 9, 5, 1),            # mini-batch 1 = plain online GD
        (4, 2, 2, 20, 4, 5),           # no remainder
    ],
)
def test_fast_scan_equals_plain_dual_form_and_its_gradients(seed, B, H, L, F, mb):
    problem = _random_problem(seed, B, H, L, F, mb)
    plain = [t.clone().requires_grad_(True) for t in problem]
    fast = [t.clone().requires_grad_(True) for t in problem]
    out_plain = ttt_linear(*plain[:8], mb, plain[8])
    out_fast = ttt_linear_fast(*fast[:8], mb, fast[8])
    assert (out_plain - out_fast).abs().max().item() <= TOL
    weight = torch.randn(out_plain.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (out_plain * weight).sum().backward()
    (out_fast * weight).sum().backward()
    names = ("q", "k", "v", "w0", "b0", "ln_w", "ln_b", "lr", "tok")
    for name, a, b in zip(names, plain, fast, strict=True):
        assert (a.grad - b.grad).abs().max().item() <= TOL, name


def test_fast_scan_gradcheck_with_remainder():
    q, k, v, w0, b0, ln_w, ln_b, lr, tok = _random_problem(6, 1, 2, 7, 3, 3)   # 2 mini-batches + 1 token
    inputs = [t.clone().requires_grad_(True) for t in (q, k, v, w0, b0, ln_w, ln_b, lr, tok)]

    def fn(q, k, v, w0, b0, ln_w, ln_b, lr, tok):
        return ttt_linear_fast(q, k, v, w0, b0, ln_w, ln_b, lr, 3, tok)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("post_norm", [False, True])
def test_bidirectional_scan_with_rope_gradcheck(post_norm):
    """Both directions, RoPE, the reversed token order and the post-norm inside the Function: gradcheck."""
    g = torch.Generator().manual_seed(7)
    B, L, H, F, mb = 1, 7, 1, 4, 3
    qkv = torch.randn(B, L, 3 * H * F, generator=g, dtype=torch.float64, requires_grad=True)
    lr = (torch.rand(B, L, H, generator=g, dtype=torch.float64) * 0.5).requires_grad_(True)
    w0 = (0.3 * torch.randn(2 * H, F, F, generator=g, dtype=torch.float64)).requires_grad_(True)
    b0 = (0.1 * torch.randn(2 * H, F, generator=g, dtype=torch.float64)).requires_grad_(True)
    ln_w = (1 + 0.2 * torch.randn(2 * H, F, generator=g, dtype=torch.float64)).requires_grad_(True)
    ln_b = (0.1 * torch.randn(2 * H, F, generator=g, dtype=torch.float64)).requires_grad_(True)
    tok = (1 / torch.arange(1, mb + 1, dtype=torch.float64)).requires_grad_(True)
    spec = ScanSpec(H, mb, (False, True), 10000.0)
    inputs = [qkv, lr, w0, b0, ln_w, ln_b, tok]
    if post_norm:
        inputs += [(1 + 0.2 * torch.randn(H * F, generator=g, dtype=torch.float64)).requires_grad_(True),
                   (0.1 * torch.randn(H * F, generator=g, dtype=torch.float64)).requires_grad_(True)]

    def fn(qkv, lr, w0, b0, ln_w, ln_b, tok, *norm):
        return ttt_scan(qkv, lr, w0, b0, ln_w, ln_b, tok, spec, *norm)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


def _grads_both_ways(model: torch.nn.Module, *inputs: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """Outputs and every parameter (and input) gradient with the reference and with the fast scan."""
    out = {}
    for impl in ("reference", "fast"):
        set_ttt_impl(model, impl)
        model.zero_grad(set_to_none=True)
        x = [t.clone().requires_grad_(t.is_floating_point() and i == 0) for i, t in enumerate(inputs)]
        y = model(*x)
        ys = [y.logits, y.heatmaps] if isinstance(y, tuple) else [y]
        w = [torch.randn(t.shape, generator=torch.Generator().manual_seed(9), dtype=t.dtype) for t in ys]
        sum((t * u).sum() for t, u in zip(ys, w, strict=True)).backward()
        res = {f"out{i}": t.detach() for i, t in enumerate(ys)}
        res.update({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        res["input"] = x[0].grad.clone()
        out[impl] = res
    return out


def _assert_same(both: dict) -> None:
    ref, fast = both["reference"], both["fast"]
    assert set(ref) == set(fast)
    for key in ref:
        assert (ref[key] - fast[key]).abs().max().item() <= TOL, key


@pytest.mark.parametrize("share", ["proj", "none", "all"])
@pytest.mark.parametrize("batch", [1, 3])   # B·L ≤ D: separate output projections; B·L > D: folded into proj
def test_bitt_fast_equals_reference_every_share_mode(share, batch):
    torch.manual_seed(0)
    layer = BiTTT(16, 2, 4, share=share).double()
    for p in layer.parameters():   # move off the zero/one initialisation so every term matters
        p.data.add_(0.1 * torch.randn_like(p))
    _assert_same(_grads_both_ways(layer, torch.randn(batch, 17, 16, dtype=torch.float64)))


def test_uni_ttt_layer_with_remainder_equals_reference():
    torch.manual_seed(1)
    layer = TTTLinear(12, 3, 5).double()   # 17 tokens = 3 mini-batches of 5 + 2
    for p in layer.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    _assert_same(_grads_both_ways(layer, torch.randn(2, 17, 12, dtype=torch.float64)))


@pytest.mark.parametrize("config_file", ["config/config.yaml", ".test/config/config.yaml"])
def test_every_table3_variant_fast_equals_reference(config_file):
    """Whole model in float64: logits, heatmaps and every parameter gradient, fast scan vs plain dual form."""
    settings = load_settings(REPO / config_file)
    for name in settings.variants:
        cfg = settings.model_for(name).with_overrides(depth=1, drop_path_rate=0.0)
        torch.manual_seed(2)
        model = AUTTT(cfg, 3).double()
        for p in model.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
        x = torch.randn(2, 3, cfg.img_size, cfg.img_size, dtype=torch.float64)
        masks = torch.rand(2, 3, *cfg.grid_size, dtype=torch.float64)
        both = _grads_both_ways(model, x, masks)
        try:
            _assert_same(both)
        except AssertionError as err:
            raise AssertionError(f"{config_file} variant {name}: {err}") from err


def test_fast_scan_keeps_only_its_inputs_for_backward():
    """Autograd's saved tensors during one Bi-TTT forward: the fast path keeps a few inputs' worth, the plain
    dual form every mini-batch step's intermediates."""
    torch.manual_seed(3)
    layer = BiTTT(64, 2, 8)
    x = torch.randn(4, 8 * 8 + 1, 64, requires_grad=True)   # an 8×8 grid + CLS, row mini-batches
    saved = {}
    for impl in ("fast", "reference"):
        set_ttt_impl(layer, impl)
        seen: dict[int, int] = {}

        def pack(t, seen=seen):
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            layer(x)
        saved[impl] = sum(seen.values())
    token_tensor = x.numel() * x.element_size()     # one (B, L, D) float32 tensor
    assert saved["fast"] <= 10 * token_tensor, saved
    assert saved["reference"] >= 3 * saved["fast"], saved


def test_bf16_autocast_training_step_keeps_the_scan_in_fp32(tiny_cfg):
    """Under bf16 autocast the projections run in bf16, the scan (forward and backward) in fp32."""
    model = AUTTT(tiny_cfg, 4)
    layer = model.blocks[0].mixer.ttt
    x = torch.randn(2, 3, 64, 64)
    masks = torch.rand(2, 4, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        qkv, lr = layer.project(torch.randn(2, 17, 32))
        assert qkv.dtype == torch.bfloat16
        out = layer.scan(qkv, lr, [0, 1], (False, True))
        assert out.dtype == torch.float32
        result = model(x, masks)
        loss = result.logits.float().sum() + result.heatmaps.float().pow(2).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert layer.W0.grad.dtype == torch.float32


def test_a_float64_training_run_is_the_same_with_either_scan():
    """The demo model trained 12 AdamW steps in float64 with the fast scan and with the plain dual form ends at
    the same weights (1e-9): the two differ only by float rounding, so any difference between fp32 demo tables
    of the two is rounding amplified by training, not a change of the computation."""
    settings = load_settings(REPO / "config/config.yaml")
    cfg = settings.model  # the full AU-TTT of the demo (Bi-TTT, MSP, AU RoI TTT)
    gen = torch.Generator().manual_seed(5)
    batches = [(torch.randn(4, 3, cfg.img_size, cfg.img_size, generator=gen, dtype=torch.float64),
                torch.rand(4, 12, *cfg.grid_size, generator=gen, dtype=torch.float64),
                (torch.rand(4, 12, generator=gen) > 0.5).double()) for _ in range(12)]
    finals = []
    for impl in ("fast", "reference"):
        torch.manual_seed(0)
        model = set_ttt_impl(AUTTT(cfg, 12).double(), impl)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
        for x, masks, labels in batches:
            out = model(x, masks)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels) + out.heatmaps.pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        finals.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    fast, ref = finals
    worst = max(float((fast[k] - ref[k]).abs().max()) for k in fast)
    print(f"largest weight difference after 12 float64 steps: {worst:.2e}")
    assert worst < 1e-9, worst
