"""Every backend of the scan core computes the plain dual form: outputs and every gradient.

* ``triton``: the two kernels run in Triton's interpreter on the CPU, in a child process started with
  ``TRITON_INTERPRET=1`` (Triton reads it when it decorates its ``@jit`` functions, its own included, i.e. when it
  is first imported; see ``tests/triton_checks.py``). The kernels take float32: results are compared with the
  plain dual form in float64 to a relative 2e-5 of each tensor's largest magnitude (1e-4 through a whole model).
  This checks the kernels' arithmetic, not their compilation for a GPU; the whole model on this backend is one
  graph forward and backward (what ``torch.compile``, or CUDA graphs through ``mode="reduce-overhead"``, needs).
* ``compiled``: the whole forward and backward (layout, the unrolled loop, the chain rule) trace into one graph
  each (``torch._dynamo.explain``: no graph break), and the traced graphs compute the same numbers in float64
  (traced with the ``aot_eager`` backend, which runs the graph without inductor's slow C++ code generation).
"""

import functools
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from test_ttt_math import _random_problem

from au_ttt.model import ttt_fast
from au_ttt.model.ttt import ttt_linear
from au_ttt.model.ttt_fast import ScanSpec, ttt_linear_fast


@pytest.mark.parametrize("check", ["dual_form", "both_directions", "table3", "whole_model_graph"])
def test_triton_kernels_in_the_interpreter(check):
    """See tests/triton_checks.py: each check in a fresh process with TRITON_INTERPRET=1."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, str(REPO / "tests" / "triton_checks.py"), check], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0 and run.stdout.rstrip().endswith("ok"), run.stdout[-3000:] + run.stderr[-3000:]


@pytest.mark.parametrize("orders,rope,norm", [((False, True), True, True), ((False,), False, False)])
def test_compiled_scan_is_one_graph_each_way(orders, rope, norm):
    B, L, H, F, mb = 2, 11, 2, 8, 4
    g = torch.Generator().manual_seed(0)
    S = len(orders)
    spec = ScanSpec(H, mb, orders, 10000.0 if rope else None, "eager")
    qkv, lr = torch.randn(B, L, 3 * H * F, generator=g), torch.rand(B, L, H, generator=g)
    params = [torch.randn(S * H, F, F, generator=g), *(torch.randn(S * H, F, generator=g) for _ in range(3)),
              torch.rand(mb, generator=g)]
    norm_args = [torch.ones(H * F), torch.zeros(H * F)] if norm else [None, None]
    rows, grad_rows, image, cos, sin = ttt_fast._aux(spec, qkv, torch.float32)
    fwd = functools.partial(ttt_fast._scan_out, spec=spec, backend="eager")
    bwd = functools.partial(ttt_fast._scan_grads, spec=spec, backend="eager")
    explained = torch._dynamo.explain(fwd)(qkv, lr, *params, *norm_args, rows, image, cos, sin)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    grad = torch.randn(B, L, S * H * F, generator=g)
    explained = torch._dynamo.explain(bwd)(grad, qkv, lr, *params, *norm_args, rows, grad_rows, image, cos, sin)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_compiled_scan_equals_the_plain_dual_form(monkeypatch):
    monkeypatch.setattr(ttt_fast, "COMPILE_BACKEND", "aot_eager")
    ttt_fast._functions.cache_clear()
    torch._dynamo.reset()
    try:
        problem = _random_problem(5, 2, 2, 4 * 3 + 2, 4, 4)
        ref = [t.clone().requires_grad_(True) for t in problem]
        comp = [t.clone().requires_grad_(True) for t in problem]
        out_ref = ttt_linear(*ref[:8], 4, ref[8])
        out = ttt_linear_fast(*comp[:8], 4, comp[8], backend="compiled")
        assert (out - out_ref).abs().max().item() <= 1e-10
        weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        (out_ref * weight).sum().backward()
        (out * weight).sum().backward()
        for a, b in zip(comp, ref, strict=True):
            assert (a.grad - b.grad).abs().max().item() <= 1e-10
    finally:
        ttt_fast._functions.cache_clear()
        torch._dynamo.reset()


def test_compiled_scan_falls_back_to_eager_when_compiling_fails(monkeypatch):
    def broken(gm, example_inputs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(ttt_fast, "COMPILE_BACKEND", broken)
    ttt_fast._functions.cache_clear()
    torch._dynamo.reset()
    try:
        problem = _random_problem(6, 1, 2, 9, 4, 4)
        eager = ttt_linear_fast(*problem[:8], 4, problem[8], backend="eager")
        with pytest.warns(RuntimeWarning, match="running it eagerly"):
            out = ttt_linear_fast(*problem[:8], 4, problem[8], backend="compiled")
        assert torch.equal(out, eager)
    finally:
        ttt_fast._functions.cache_clear()
        torch._dynamo.reset()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the interpreter checks run everywhere)")
@pytest.mark.parametrize("seed,B,H,L,F,mb", [(0, 4, 6, 14 * 14 + 1, 64, 14), (1, 2, 2, 23, 16, 5)])
def test_triton_kernels_on_cuda_equal_the_plain_dual_form(seed, B, H, L, F, mb, monkeypatch):
    """The kernels compiled for the GPU (scripts/gpu_check.sh runs this first), true fp32 products."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    problem = _random_problem(seed, B, H, L, F, mb)
    ref = [t.clone().requires_grad_(True) for t in problem]
    gpu = [t.float().cuda().requires_grad_(True) for t in problem]
    out_ref = ttt_linear(*ref[:8], mb, ref[8])
    out = ttt_linear_fast(*gpu[:8], mb, gpu[8], backend="triton")
    weight = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (out_ref * weight).sum().backward()
    (out * weight.float().cuda()).sum().backward()
    for a, b in [(out, out_ref)] + [(x.grad, y.grad) for x, y in zip(gpu, ref, strict=True)]:
        err = (a.double().cpu() - b).abs().max().item()
        assert err <= 2e-5 * b.abs().max().item(), err
