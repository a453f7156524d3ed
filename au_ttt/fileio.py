"""Atomic outputs: write beside the target, then rename, so a crash or kill never leaves half a file.

Every file or folder the pipeline produces goes through here. Temporary names start with a dot and
carry the writer's pid, so concurrent writers and a later glob never see them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "swap_in_dir", "umask_mode"]


def umask_mode(directory: bool = False) -> int:
    """The mode a plain ``open``/``mkdir`` would give (mkstemp/mkdtemp make private 0600/0700 entries)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, data: str | bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data.encode() if isinstance(data, str) else data))


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """JSON with numpy scalars and paths rendered through ``float``/``str`` where json cannot."""

    def default(value: Any) -> Any:
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)

    return atomic_write_text(path, json.dumps(obj, indent=indent, default=default) + "\n")


def swap_in_dir(new: Path, target: Path) -> None:
    """Replace folder ``target`` by the finished folder ``new`` (same parent); the old one is removed after."""
    os.chmod(new, umask_mode(directory=True))
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)
