"""Count the aten operations a model runs: how many, and how many of them are matrix products.

Why: on a GPU every operation is at least one kernel launch (≈ 5–10 µs each before any arithmetic), so the
number of operations per training step, not only its FLOPs, sets the step time of a model made of many
small products such as the TTT scan. The count is deterministic (no timing, no sampling): a
``TorchDispatchMode`` sees every aten operation once, below autograd and after composite operations
(``linear``, ``matmul``, ``layer_norm`` …) have been broken into the ones that run (``addmm``, ``bmm``,
``native_layer_norm`` …), and nothing that operation calls inside. Views (``view``, ``t``, ``unbind`` …)
are counted too (they cost dispatcher time, not a kernel); :func:`count_ops` reports them separately.
A custom op (the Triton scan kernels, ``au_ttt::ttt_scan_*``) counts as one operation, like the kernel launch it
is. torch.compile does not run under a dispatch mode, so a model with ``model.compile: true`` is counted as the
eager program it compiles (its scan falls back to that program while a mode is active).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["MATMUL_OPS", "OpCount", "count_ops", "is_matmul"]

# aten operations that are a matrix product (or a convolution / attention, their batched relatives)
MATMUL_OPS = frozenset({
    "mm", "bmm", "addmm", "baddbmm", "addbmm", "matmul", "linear", "einsum", "mv", "addmv", "dot", "vdot",
    "convolution", "_convolution", "convolution_backward", "mkldnn_convolution", "conv2d", "conv1d",
    "_addmm_activation",
})


def is_matmul(name: str) -> bool:
    """Whether the aten operation ``name`` (overload packet name, e.g. ``"bmm"``) is a matrix product."""
    return name in MATMUL_OPS or name.startswith(("_scaled_dot_product", "scaled_dot_product", "_flash_attention",
                                                   "_efficient_attention", "cudnn_convolution"))


@dataclass
class OpCount:
    """What one call ran: total operations, matrix products, views, and the count per operation name."""

    ops: int = 0
    matmul_ops: int = 0
    view_ops: int = 0
    by_name: dict[str, int] = field(default_factory=dict)


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: Counter[str] = Counter()
        self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names[func.overloadpacket.__name__] += 1
        if func.is_view:
            self.views += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], object]) -> OpCount:
    """Run ``fn()`` once and count the aten operations it dispatches (autograd's backward included)."""
    counter = _Counter()
    with counter:
        fn()
    names = dict(sorted(counter.names.items(), key=lambda kv: (-kv[1], kv[0])))
    return OpCount(sum(names.values()), sum(n for k, n in names.items() if is_matmul(k)), counter.views, names)
