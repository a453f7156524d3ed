"""Provenance of a run: code version, config and data hashes, device and host, as string tags.

Every tracked run carries these so that a number in a table can be traced back to the exact code
(git commit + dirty flag + diff hash), the resolved config (hash of its canonical JSON), the data it
read (hash of a manifest file or directory) and where it ran. Nothing here imports torch or mlflow.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from au_ttt.config import to_dict
from au_ttt.digests import json_digest
from au_ttt.errors import InputError
from au_ttt.train.runkey import tree_digest

__all__ = ["config_hash", "device_description", "flatten", "git_state", "manifest_hash", "run_tags"]

# the repository the running au_ttt code comes from (editable install), not the caller's cwd
_CODE_ROOT = Path(__file__).resolve().parents[2]


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config (mapping or dataclass) to dotted keys: ``{"model.depth": 12, ...}``.

    Lists stay values (MLflow params are strings anyway); an empty mapping becomes ``{}`` under its key
    so that it is still visible.
    """
    plain = to_dict(config)
    if not isinstance(plain, dict):
        raise TypeError(f"flatten() needs a mapping or dataclass, got {type(config).__name__}")
    out: dict[str, Any] = {}
    for key, value in plain.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def config_hash(config: Any) -> str:
    """SHA-256 of the canonical JSON of a resolved config (key order and tuple/list do not matter)."""
    return json_digest(to_dict(config))


def manifest_hash(path: str | Path) -> str:
    """SHA-256 identifying a data manifest: a file's content, or every file of a directory
    (:func:`au_ttt.train.runkey.tree_digest`: relative paths, sizes and bytes; mtimes and walk order do not
    matter). Point it at a manifest (frame index, ``dvc.lock``, a ``.dvc`` file): it reads every byte.
    """
    if not Path(path).exists():
        raise InputError(f"{path}: data manifest not found; pass an existing manifest file or directory")
    return tree_digest(path)


def _git(*args: str, root: Path) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.decode(errors="replace") if res.returncode == 0 else None


def git_state(root: str | Path | None = None) -> dict[str, str]:
    """Commit, dirty flag and a hash of the uncommitted diff of the code's git checkout.

    Untracked (not ignored) files count as dirty: a new module changes what runs. Outside a checkout,
    or without git, the values are ``"unknown"`` rather than an error — provenance must not stop training.
    """
    root = Path(root) if root is not None else _CODE_ROOT
    commit = _git("rev-parse", "HEAD", root=root)
    status = _git("status", "--porcelain", root=root)
    if commit is None or status is None:
        return {"git.commit": "unknown", "git.dirty": "unknown", "git.diff_hash": "unknown"}
    diff = _git("diff", "HEAD", root=root) or ""
    return {
        "git.commit": commit.strip(),
        "git.dirty": str(bool(status.strip())).lower(),
        # what `git diff HEAD` shows plus the untracked names: two dirty trees with equal hashes ran the same code
        "git.diff_hash": hashlib.sha256((diff + status).encode()).hexdigest()[:16] if status.strip() else "",
    }


def device_description(device: str | None = None) -> str:
    """Where the run computes: ``device`` as given, else from ``CUDA_VISIBLE_DEVICES`` (no torch import)."""
    if device:
        return device
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() not in ("", "-1"):
        return f"cuda (CUDA_VISIBLE_DEVICES={visible})"
    return "cpu"


def run_tags(config: Any = None, manifest: str | Path | None = None, device: str | None = None,
             root: str | Path | None = None) -> dict[str, str]:
    """The provenance tags every run gets: git, config hash, data manifest hash, device, host, python."""
    git = git_state(root)
    tags = {
        **git,
        "config_hash": config_hash(config) if config is not None else "none",
        "data_manifest": str(Path(manifest).resolve()) if manifest is not None else "none",
        "data_manifest_hash": manifest_hash(manifest) if manifest is not None else "none",
        "device": device_description(device),
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
    }
    if git["git.commit"] != "unknown":
        tags["mlflow.source.git.commit"] = git["git.commit"]  # shown by the MLflow UI
    return tags
