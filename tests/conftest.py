"""Shared fixtures: a tiny model config for CPU tests, repo paths."""

from pathlib import Path

import pytest
import torch

from au_ttt.model.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch CPU thread for a module's tests (deterministic reductions; no oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    """4×4 patch grid, 2 blocks, 32-dim: every branch enabled, fast on CPU."""
    return ModelConfig(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2, drop_path_rate=0.0)
