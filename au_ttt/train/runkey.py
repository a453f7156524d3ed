"""The run key: one hash over everything that determines a training result, so a checkpoint is resumed
only when nothing that matters has changed — and the reason is named when it has.

Components (each a SHA-256, recorded in the checkpoint, ``run.json`` and the tracking tags):

* ``config.<section>`` — every config section the run reads, as resolved for its variant: ``model`` (variant
  applied), ``loss``, ``train`` (without ``num_workers``, ``threads`` and the ``pretrained`` *path*, which
  cannot change the result or are hashed by content below) and ``heatmaps``;
* ``spec`` — dataset, test part, variant;
* ``index``, ``crops``, ``heatmaps`` — the CONTENT of the data products (:func:`tree_digest`);
* ``pretrained`` — the content of the initial weights file (or ``none``);
* ``code`` — every ``au_ttt/**/*.py`` file (:func:`source_digest`).

Not in the key: the device (a run may resume on another GPU or the CPU; results then differ in the last
bits, as any CPU/GPU pair does), progress bars, worker and thread counts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from au_ttt.digests import file_digest, json_digest
from au_ttt.errors import InputError

__all__ = ["PACKAGE_ROOT", "RunKey", "file_digest", "run_key", "source_digest", "tree_digest"]

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the au_ttt package that is running
_CHUNK = 1 << 20
_NOT_IN_KEY = {"train": ("num_workers", "threads", "pretrained")}


def _walk(root: Path, suffix: str | None) -> Iterator[tuple[str, str]]:
    """(relative posix path, absolute path) of the files under ``root``; dot-entries and __pycache__ skipped.

    Dot-names are the temporaries of interrupted atomic writers (au_ttt.fileio): never part of a product.
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name == "__pycache__":
                    continue
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.is_file() and (suffix is None or entry.name.endswith(suffix)):
                    yield Path(entry.path).relative_to(root).as_posix(), entry.path


def tree_digest(path: str | Path, suffix: str | None = None) -> str:
    """SHA-256 of a file, or of a folder's files: sorted relative paths, sizes and bytes, streamed.

    One pass, one hash object, reads of 1 MiB: for the 146k crop files of BP4D the cost is reading them
    once. Renames, additions, removals and edits change it; mtimes and walk order do not.
    """
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        raise InputError(f"{path}: not found (a training input must exist before its run key is computed)")
    h = hashlib.sha256()
    for rel, full in sorted(_walk(path, suffix)):
        with open(full, "rb") as f:
            h.update(f"{rel}\0{os.fstat(f.fileno()).st_size}\0".encode())
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def source_digest(root: str | Path | None = None) -> str:
    """Digest of the ``au_ttt`` package source (every ``*.py`` under it): any code edit changes it."""
    return tree_digest(PACKAGE_ROOT if root is None else root, suffix=".py")


@dataclass(frozen=True)
class RunKey:
    """Named component digests and their combined digest (:attr:`digest`)."""

    components: dict[str, str]

    @property
    def digest(self) -> str:
        return json_digest(self.components)

    def changes(self, other: Mapping[str, str] | None) -> list[str]:
        """Components that differ from ``other`` (a stored ``components`` dict), readable."""
        if not other:
            return ["(the checkpoint has no run key: written by an older version)"]
        names = sorted(set(self.components) | set(other))
        return [_label(n) for n in names if self.components.get(n) != other.get(n)]

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "components": dict(self.components)}


def _label(name: str) -> str:
    if name.startswith("config."):
        return f"config section '{name.removeprefix('config.')}'"
    return {"index": "frame index content", "crops": "crop store content", "heatmaps": "heatmap cache content",
            "pretrained": "pretrained weights file", "code": "au_ttt source code",
            "spec": "dataset/fold/variant"}.get(name, name)


def run_key(resolved: Mapping[str, Any], spec: Mapping[str, Any], inputs: Mapping[str, str | Path | None],
            code_root: str | Path | None = None) -> RunKey:
    """The key of one run: ``resolved`` config sections (``settings.resolved(variant)``), the run ``spec``,
    ``inputs`` (name → data file/folder or None) hashed by content, and the package source."""
    components: dict[str, str] = {}
    for section in ("model", "loss", "train", "heatmaps"):
        values = {k: v for k, v in dict(resolved[section]).items() if k not in _NOT_IN_KEY.get(section, ())}
        components[f"config.{section}"] = json_digest(values)
    components["spec"] = json_digest(dict(spec))
    for name, path in sorted(inputs.items()):
        components[name] = "none" if path is None else tree_digest(path)
    components["code"] = source_digest(code_root)
    return RunKey(components)
