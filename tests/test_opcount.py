"""The operation counter: exact counts on small programs (forward and autograd's backward), the matrix-product
classification, and the bench fields it fills."""

import torch

from au_ttt.model.opcount import count_ops, is_matmul


def test_counts_every_dispatched_operation_once_including_backward():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with torch.no_grad():
        fwd = count_ops(lambda: lin(x))
    assert fwd.matmul_ops == 1 and fwd.by_name.get("addmm") == 1    # linear → t + addmm below autograd
    train = count_ops(lambda: lin(x).sum().backward())
    assert train.by_name.get("addmm") == 1 and train.by_name.get("mm") == 1    # ∂W (∂x is not needed)
    assert train.matmul_ops == 2 and train.ops > fwd.ops
    assert train.ops == sum(train.by_name.values()) and 0 < train.view_ops < train.ops


def test_a_loop_counts_per_iteration():
    a, b = torch.randn(3, 5, 5), torch.randn(3, 5, 5)

    def loop(n: int):
        def run():
            z = a
            for _ in range(n):
                z = torch.bmm(z, b).tanh()
        return run

    assert count_ops(loop(4)).ops == 4 * count_ops(loop(1)).ops == 8
    assert count_ops(loop(4)).matmul_ops == 4


def test_matmul_classification():
    for name in ("mm", "bmm", "baddbmm", "addmm", "convolution_backward",
                 "_scaled_dot_product_flash_attention_for_cpu"):
        assert is_matmul(name), name
    for name in ("add", "native_layer_norm", "view", "sum", "cat"):
        assert not is_matmul(name), name
