"""Checks of the Triton scan kernels, run by ``tests/test_ttt_backends.py`` in a child process whose environment
has ``TRITON_INTERPRET=1``: Triton's own ``@jit`` helpers (``tl.sum``'s combine function …) are decorated when
``triton`` is first imported — timm imports it — so the variable must be set before that, i.e. in a fresh
process. The kernels run on the CPU (numpy) there.

Usage: ``TRITON_INTERPRET=1 python tests/triton_checks.py NAME`` (exit status 0: the check passed).
"""

import sys

import torch
from conftest import REPO
from test_ttt_math import _random_problem

from au_ttt.model import ttt_triton
from au_ttt.model.au_ttt import AUTTT
from au_ttt.model.layers import set_scan_backend, set_ttt_impl
from au_ttt.model.ttt import ttt_linear
from au_ttt.model.ttt_fast import ScanSpec, ttt_linear_fast, ttt_scan
from au_ttt.settings import load_settings

REL = 2e-5   # float32 kernel vs float64 reference, relative to each tensor's largest magnitude


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = REL) -> bool:
    scale = b.abs().max().item()
    err = (a.double() - b.double()).abs().max().item()
    print(f"  largest difference {err:.2e} (relative {err / max(scale, 1e-12):.2e})")
    return err <= rel * max(scale, 1e-12)


def dual_form() -> None:
    """The kernels through ttt_linear_fast equal the plain dual form (remainders, CLS alone, L < b)."""
    for seed, B, H, L, F, mb in [(0, 2, 2, 4 * 5 + 3, 16, 5), (1, 1, 2, 14 * 2 + 1, 32, 14), (2, 2, 1, 7, 16, 16)]:
        problem = _random_problem(seed, B, H, L, F, mb)
        ref = [t.clone().requires_grad_(True) for t in problem]
        kern = [t.float().requires_grad_(True) for t in problem]
        out_ref = ttt_linear(*ref[:8], mb, ref[8])
        out = ttt_linear_fast(*kern[:8], mb, kern[8], backend="triton")
        assert out.dtype == torch.float32 and _close(out, out_ref)
        weight = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        (out_ref * weight).sum().backward()
        (out * weight.float()).sum().backward()
        for name, a, b in zip(("q", "k", "v", "w0", "b0", "ln_w", "ln_b", "lr", "tok"), kern, ref, strict=True):
            assert _close(a.grad, b.grad), name


def both_directions() -> None:
    """Bi-TTT layout (reversed patches, RoPE, post-norm inside the Function): Triton vs the fused PyTorch loop."""
    g = torch.Generator().manual_seed(3)
    B, L, H, F, mb = 2, 13, 2, 16, 4
    inputs = [torch.randn(B, L, 3 * H * F, generator=g), 0.1 * torch.rand(B, L, H, generator=g),
              0.2 * torch.randn(2 * H, F, F, generator=g), 0.1 * torch.randn(2 * H, F, generator=g),
              1 + 0.2 * torch.randn(2 * H, F, generator=g), 0.1 * torch.randn(2 * H, F, generator=g),
              1 / torch.arange(1, mb + 1.0), 1 + 0.2 * torch.randn(H * F, generator=g),
              0.1 * torch.randn(H * F, generator=g)]
    grads = {}
    for backend in ("eager", "triton"):
        leaves = [(t.double() if backend == "eager" else t.clone()).requires_grad_(True) for t in inputs]
        out = ttt_scan(*leaves[:7], ScanSpec(H, mb, (False, True), 10000.0, backend), *leaves[7:])
        (out * torch.linspace(-1, 1, out.numel()).view_as(out).to(out.dtype)).sum().backward()
        grads[backend] = [out.detach()] + [t.grad for t in leaves]
    for i, (a, b) in enumerate(zip(grads["triton"], grads["eager"], strict=True)):
        assert _close(a, b), i


def table3() -> None:
    """The demo-size model (head dim 32) on the Triton backend, every Table III variant with a scan: logits,
    heatmaps and every gradient against the plain dual form in float64 (relative 1e-4: fp32 through a model)."""
    settings = load_settings(REPO / "config/config.yaml")
    for name in settings.variants:
        cfg = settings.model_for(name).with_overrides(depth=1, drop_path_rate=0.0)
        if cfg.mixer != "ttt" and not cfg.au_roi:
            continue                                                  # no scan in this variant
        print(name)
        torch.manual_seed(2)
        model = AUTTT(cfg, 3).double()
        for p in model.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
        x = torch.randn(1, 3, cfg.img_size, cfg.img_size, dtype=torch.float64)
        masks = torch.rand(1, 3, *cfg.grid_size, dtype=torch.float64)
        results = {}
        for impl, dtype in (("reference", torch.float64), ("fast", torch.float32)):
            m = set_scan_backend(set_ttt_impl(model.to(dtype), impl), "triton")
            m.zero_grad(set_to_none=True)
            out = m(x.to(dtype), masks.to(dtype))
            (out.logits.sum() + out.heatmaps.pow(2).sum()).backward()
            results[impl] = [out.logits.detach(), out.heatmaps.detach()] + [
                p.grad.clone() for p in m.parameters() if p.grad is not None]
        for i, (a, b) in enumerate(zip(results["fast"], results["reference"], strict=True)):
            assert _close(a, b, 1e-4), f"variant {name}, tensor {i}"


def whole_model_graph() -> None:
    """The demo-size full model on the Triton backend is one graph, forward and backward (no graph break: the
    kernels are custom ops), so the whole step can be compiled or captured in CUDA graphs
    (``torch.compile(mode="reduce-overhead")``); the captured program computes what the eager one does."""
    settings = load_settings(REPO / "config/config.yaml")
    cfg = settings.model_for("au_roi_ttt").with_overrides(drop_path_rate=0.0)
    torch.manual_seed(4)
    model = set_scan_backend(AUTTT(cfg, 3), "triton")
    x, masks = torch.randn(2, 3, cfg.img_size, cfg.img_size), torch.rand(2, 3, *cfg.grid_size)
    explained = torch._dynamo.explain(model)(x, masks)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    results = []
    for run in (model, torch.compile(model, backend="aot_eager", fullgraph=True)):
        model.zero_grad(set_to_none=True)
        out = run(x, masks)
        (out.logits.sum() + out.heatmaps.pow(2).sum()).backward()
        results.append([out.logits.detach(), out.heatmaps.detach()] + [p.grad.clone() for p in model.parameters()
                                                                         if p.grad is not None])
    assert len(results[1]) == len(results[0]) > 2
    for i, (a, b) in enumerate(zip(*results, strict=True)):
        assert _close(a, b, 1e-4), f"tensor {i}"       # float32 through a model, as in table3


if __name__ == "__main__":
    assert ttt_triton.INTERPRETED, "run with TRITON_INTERPRET=1 in the environment"
    {"dual_form": dual_form, "both_directions": both_directions, "table3": table3,
     "whole_model_graph": whole_model_graph}[sys.argv[1]]()
    print("ok")
