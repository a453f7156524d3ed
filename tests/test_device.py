"""The one device policy (``au_ttt.train.runtime.resolve_device``): what ``--device auto|cpu|cuda|cuda:N`` means
for train, pretrain, evaluate, predict and bench alike. CUDA's presence is simulated, so every branch runs on any
machine, with or without a GPU."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
import torch

from au_ttt.cli import main
from au_ttt.errors import InputError
from au_ttt.train import runtime

PACKAGE = Path(runtime.__file__).resolve().parents[1]


@pytest.fixture
def cuda(monkeypatch):
    """Set how many CUDA devices torch sees (0: none usable)."""
    def see(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    return see


@pytest.mark.parametrize("spelling", ["gpu", "gpu0", "cuda1", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "", "mps"])
def test_bad_spellings_name_the_choices(spelling, cuda) -> None:
    cuda(2)
    with pytest.raises(InputError, match=r"use auto, cpu, cuda or cuda:N"):
        runtime.resolve_device(spelling)


def test_cuda_asked_for_without_cuda_is_a_clear_error(cuda, monkeypatch) -> None:
    cuda(0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    for asked in ("cuda", "cuda:0", "CUDA:1"):
        with pytest.raises(InputError, match=rf"--device {asked}: torch finds no usable CUDA device "
                                             r"\(CUDA_VISIBLE_DEVICES=3\); check the driver"):
            runtime.resolve_device(asked)


def test_auto_falls_back_to_the_cpu_with_a_warning(cuda, caplog, monkeypatch) -> None:
    cuda(0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert runtime.resolve_device(" CPU ") == torch.device("cpu")
    assert not caplog.text
    with caplog.at_level(logging.WARNING, logger="au_ttt.train.runtime"):
        assert runtime.resolve_device("auto") == torch.device("cpu")
    assert "no usable CUDA device: running on the CPU" in caplog.text


def test_cuda_indices(cuda) -> None:
    cuda(2)
    assert runtime.resolve_device("auto") == torch.device("cuda", 0)
    assert runtime.resolve_device("auto", local_rank=1) == torch.device("cuda", 1)   # torchrun's LOCAL_RANK
    assert runtime.resolve_device("cuda") == torch.device("cuda", 0)
    assert runtime.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(InputError, match=r"--device cuda:2: CUDA device 2 does not exist here \(2 visible"):
        runtime.resolve_device("cuda:2")


def test_bench_uses_the_policy(cuda, capsys) -> None:
    cuda(0)
    assert main(["bench", "--no-bench", "--device", "gpu0"]) == 2
    assert "use auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    assert main(["bench", "--no-bench", "--device", "cuda"]) == 2
    assert "torch finds no usable CUDA device" in capsys.readouterr().err


def test_no_other_module_decides_the_device() -> None:
    """Only the policy asks torch whether CUDA is usable to choose a device. Two modules ask for another reason:
    the checkpoint (to save/restore CUDA RNG state) and the Triton kernels (whether they can run at all, a
    capability of the scan backend, not a choice of device)."""
    allowed = {"train/runtime.py", "train/checkpoint.py", "model/ttt_triton.py"}
    deciders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "is_available" and rel not in allowed:
                deciders.append(f"{rel}:{node.lineno}")
    assert deciders == []
