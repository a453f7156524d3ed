"""Record the aten ops of one training step or forward: per op its name, dtype, FLOPs, bytes moved, count.

Why: a GPU's time for a step of small ops is set by how many kernels it launches and how many bytes each
moves, not by the model's FLOPs alone (:mod:`au_ttt.planning.gpu_model` turns these records into seconds).
Shapes, dtypes and the op sequence do not depend on the device, so the step runs here on **fake tensors**
(``torch._subclasses.FakeTensorMode``: shapes and dtypes only, no arithmetic, no memory), on the CPU
dispatch path with the CUDA-side behaviour that differs made explicit:

* autocast: CPU autocast casts the same matmul/convolution/attention ops to half precision as CUDA
  autocast; CUDA autocast also runs softmax, layer norm, exp/log/pow and sums in float32, which
  :class:`_CudaAutocastFp32` adds (PyTorch ``aten/src/ATen/autocast_mode.cpp``, the CUDA fp32 lists);
* optimisers and gradient clipping use the multi-tensor (``foreach``) kernels, PyTorch's default on CUDA;
* ``.item()`` returns 1 and is counted (``item_calls``): a device sync on a GPU tensor, a plain read on
  a host tensor such as AdamW's step counters (fake tensors cannot tell the two apart).

Each record: a view or alias (no kernel), or a kernel with its FLOPs (torch's ``FlopCounterMode`` formulas
for matmul, convolution and attention, :func:`au_ttt.model.flops.flop_counter`; 0 for other ops) and bytes
(inputs read + outputs written, each tensor's distinct elements × element size: an expanded bias counts
once). Records with equal (op, dtype, FLOPs, bytes) are aggregated with a count, so a 12-block model's
profile is a few hundred rows (:func:`profile_json`). A custom op (``torch.library``, e.g. a fused TTT scan
with a fake implementation) counts as one kernel under its own namespace; its FLOPs count once a formula is
registered with ``torch.utils.flop_counter.register_flop_formula``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["FORMAT", "OpRecorder", "fake_module", "profile_fn", "profile_json"]

FORMAT = "au-ttt op profile 1"
_DTYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64"}
# ops that allocate or re-describe memory without launching a kernel
_NO_KERNEL = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "_unsafe_view", "lift_fresh",
              "set_", "resize_", "_reshape_alias", "detach", "alias", "as_strided_", "_local_scalar_dense",
              "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "is_same_size",
              "_has_compatible_shallow_copy_type", "_record_function_enter_new", "_record_function_exit"}
_HALF = (torch.float16, torch.bfloat16)


def _touched_bytes(t: torch.Tensor) -> int:
    """Distinct elements of ``t`` × element size (stride-0 dims, e.g. an expanded bias, count once)."""
    n = math.prod(s for s, st in zip(t.shape, t.stride(), strict=True) if st != 0) if t.dim() else 1
    return n * t.element_size()


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [x for x in tree_flatten(tree)[0] if isinstance(x, torch.Tensor)]


class OpRecorder(TorchDispatchMode):
    """Counts every aten op below autograd and autocast: kernels (with FLOPs and bytes), views, ``.item()``."""

    def __init__(self) -> None:
        super().__init__()
        from au_ttt.model.flops import flop_counter

        self.flop_formulas = flop_counter().flop_registry
        self.kernels: Counter[tuple[str, str, int, int]] = Counter()
        self.views = 0
        self.item_calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.__name__.split(".")[0]
        if name == "_local_scalar_dense":   # .item(): fake tensors hold no value
            self.item_calls += 1
            return True if args[0].dtype == torch.bool else 1
        out = func(*args, **kwargs)
        if func.namespace in ("prim", "profiler"):    # device queries, profiler markers: no kernel
            return out
        if func.is_view or name in _NO_KERNEL:
            self.views += 1
            return out
        inputs = _tensors((args, kwargs))
        floats = [t.dtype for t in inputs if t.is_floating_point()]
        dtype = _DTYPES.get(floats[0], str(floats[0])) if floats else "-"
        formula = self.flop_formulas.get(func.overloadpacket)
        flops = int(formula(*args, **kwargs, out_val=out)) if formula else 0
        moved = sum(_touched_bytes(t) for t in inputs) + sum(_touched_bytes(t) for t in _tensors(out))
        self.kernels[(f"{func.namespace}.{name}", dtype, flops, moved)] += 1
        return out


class _CudaAutocastFp32(TorchFunctionMode):
    """Under autocast, run in float32 what CUDA autocast runs in float32 and CPU autocast does not."""

    def __init__(self) -> None:
        super().__init__()
        F = nn.functional
        self.cast = {F.layer_norm, F.group_norm, torch.exp, torch.Tensor.exp, torch.log, torch.Tensor.log,
                     torch.pow, torch.Tensor.pow, torch.rsqrt, torch.Tensor.rsqrt, torch.reciprocal,
                     torch.Tensor.reciprocal, F.softplus, torch.logsumexp, torch.Tensor.logsumexp}
        self.out_fp32 = {F.softmax, torch.softmax, torch.Tensor.softmax, F.log_softmax, torch.log_softmax,
                         torch.Tensor.log_softmax, torch.sum, torch.Tensor.sum, torch.cumsum, torch.Tensor.cumsum}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if torch.is_autocast_enabled("cpu"):
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if func in self.cast:
                args = tuple(a.float() if isinstance(a, torch.Tensor) and a.dtype in _HALF else a for a in args)
            elif func in self.out_fp32 and first is not None and first.dtype in _HALF and "dtype" not in kwargs:
                kwargs["dtype"] = torch.float32
        return func(*args, **kwargs)


def fake_module(module: nn.Module, mode: FakeTensorMode) -> nn.Module:
    """Replace every parameter and buffer of ``module`` by a fake tensor of ``mode`` (same shape and dtype)."""
    for sub in module.modules():
        for name, p in list(sub._parameters.items()):
            if p is not None:
                sub._parameters[name] = nn.Parameter(mode.from_tensor(p.detach()), requires_grad=p.requires_grad)
        for name, b in list(sub._buffers.items()):
            if b is not None:
                sub._buffers[name] = mode.from_tensor(b)
    return module


@contextmanager
def _foreach_like_cuda() -> Iterator[None]:
    """Gradient clipping with the foreach kernels, as on CUDA (fake tensors report the CPU device)."""
    original = torch.nn.utils.clip_grad_norm_

    def clip(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
        return original(parameters, max_norm, norm_type, error_if_nonfinite,
                        foreach=True if foreach is None else foreach)

    torch.nn.utils.clip_grad_norm_ = clip
    try:
        yield
    finally:
        torch.nn.utils.clip_grad_norm_ = original


def profile_fn(step: Callable[[], None], warmup: int = 1) -> OpRecorder:
    """Run ``step`` ``warmup`` times (records dropped: optimiser state appears), then once recorded."""
    for _ in range(warmup):
        with OpRecorder():
            step()
    recorder = OpRecorder()
    with recorder:
        step()
    return recorder


@contextmanager
def fake_session() -> Iterator[FakeTensorMode]:
    """A fake-tensor mode with the CUDA autocast fp32 policy and foreach clipping; yields the mode."""
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with ExitStack() as stack:
        stack.enter_context(mode)
        stack.enter_context(_CudaAutocastFp32())
        stack.enter_context(_foreach_like_cuda())
        yield mode


def profile_json(recorder: OpRecorder, meta: dict) -> dict:
    """The compact, JSON-ready profile: ``ops`` rows [op, dtype, count, FLOPs, bytes] and totals."""
    rows = sorted(([op, dt, n, f, b] for (op, dt, f, b), n in recorder.kernels.items()),
                  key=lambda r: (r[0], r[1], r[3], r[4]))
    totals = {"kernel_ops": sum(r[2] for r in rows), "matmul_ops": sum(r[2] for r in rows if r[3] > 0),
              "view_ops": recorder.views, "item_calls": recorder.item_calls,
              "flops": sum(r[2] * r[3] for r in rows), "bytes": sum(r[2] * r[4] for r in rows)}
    return {"format": FORMAT, **meta, "torch": torch.__version__, "totals": totals, "ops": rows}
