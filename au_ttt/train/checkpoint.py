"""Atomic, resumable checkpoints: model, optimiser, scheduler, RNG states, epoch and history.

Written to a temp file in the same directory and renamed, so a kill -9 leaves either the previous or the
new checkpoint, never half of one. Loaded with ``torch.load(weights_only=True)``: only tensors and plain
containers are stored (the NumPy RNG state is converted to a tensor for that reason).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from au_ttt.errors import InputError
from au_ttt.fileio import atomic_write

__all__ = ["CHECKPOINT_KEYS", "load_checkpoint", "restore_rng", "rng_state", "save_checkpoint"]


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, **payload: Any) -> Path:
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "rng", "epoch", "step", "history")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's payload; a missing, truncated or foreign file is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found (train first, or drop --resume to start fresh)")
    fix = "delete it to train this run from the start"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # zip, pickle and storage errors all mean "not a checkpoint we wrote"
        raise InputError(f"{path}: not a readable checkpoint ({type(err).__name__}: {str(err)[:200]}); {fix}") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise InputError(f"{path}: not an `au-ttt train` checkpoint of this version (missing {', '.join(missing)}); "
                         f"{fix}")
    return payload
