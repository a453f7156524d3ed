"""Atomic outputs: write beside the target, then rename, so a crash or kill never leaves half a file.

Every file or folder the pipeline produces goes through here. Temporary names start with a dot and
carry the writer's pid, so concurrent writers and a later glob never see them, and the next writer of
the same target can tell a live writer's temporary from one a killed run left behind:

- ``.NAME.<pid>.<random>.tmp``   a file being written by :func:`atomic_write` (or :func:`temp_file`);
- ``.NAME.<pid>.<random>.tmp.EXT`` a file whose writer picks its format by extension (:func:`temp_file`);
- ``.NAME.tmp-<pid>-<random>``   a folder being built by :func:`building_dir` (or :func:`make_temp_dir`);
- ``.NAME.old.<pid>``            the previous folder while :func:`swap_in_dir` replaces it.

:func:`sweep_stale` removes those whose pid is no longer alive on this machine; every writer here calls
it first, so a killed run's leftovers disappear on the next run of the same stage. A temporary whose pid
is alive (a concurrent writer, or an unrelated process that reused the pid) is left alone: at worst a
hidden folder stays until a later run, but no writer ever deletes another live writer's work.
:func:`sweep_stale_dir` does the same for every target in a folder, for writers whose targets change from
run to run (``au-ttt predict`` names its CSVs after its inputs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write", "atomic_write_json", "atomic_write_text", "building_dir", "make_temp_dir", "pid_alive",
    "swap_in_dir", "sweep_stale", "sweep_stale_dir", "temp_file", "umask_mode",
]


def umask_mode(directory: bool = False) -> int:
    """The mode a plain ``open``/``mkdir`` would give (mkstemp/mkdtemp make private 0600/0700 entries)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # exists, owned by someone else
        return True
    return True


def _stale_patterns(name: str | None) -> list[re.Pattern[str]]:
    """Temporary-name patterns of target ``name`` (None: of any target); the writer's pid is group ``pid``."""
    n = re.escape(name) if name is not None else ".+"
    rand = r"[a-z0-9_]{8}"                                   # tempfile's random part: exactly 8 of these
    return [re.compile(rf"^\.{n}\.(?P<pid>\d+)\.{rand}\.tmp(\.[A-Za-z0-9]+)?$"),   # atomic_write, temp_file
            re.compile(rf"^\.{n}\.tmp-(?P<pid>\d+)-{rand}$"),        # building_dir / make_temp_dir
            re.compile(rf"^\.{n}\.old\.(?P<pid>\d+)$")]              # swap_in_dir


def _sweep(folder: Path, patterns: list[re.Pattern[str]]) -> list[Path]:
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in names:
        for pattern in patterns:
            match = pattern.match(name)
            if match is None:
                continue
            if not pid_alive(int(match.group("pid"))):
                path = folder / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
            break
    return removed


def sweep_stale(target: str | Path) -> list[Path]:
    """Remove the temporaries of ``target`` left by writers that are no longer running; returns them."""
    target = Path(target)
    return _sweep(target.parent, _stale_patterns(target.name))


def sweep_stale_dir(folder: str | Path) -> list[Path]:
    """Remove the temporaries of every target in ``folder`` whose writers are no longer running."""
    return _sweep(Path(folder), _stale_patterns(None))


def temp_file(path: str | Path, keep_suffix: bool = False) -> Path:
    """A new empty temporary beside ``path`` (after sweeping dead writers' ones), named so that
    :func:`sweep_stale` recognises it; ``keep_suffix`` ends it in ``path``'s extension too (for writers
    that choose a format by it, such as OpenCV's VideoWriter)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                suffix=".tmp" + (path.suffix if keep_suffix else ""))
    os.close(fd)
    return Path(name)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then rename it to ``path``."""
    path = Path(path)
    tmp = temp_file(path)
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


def make_temp_dir(target: str | Path) -> Path:
    """An empty folder ``.NAME.tmp-<pid>-<random>`` beside ``target`` (after sweeping stale ones)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(target)
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-{os.getpid()}-"))


def swap_in_dir(new: Path, target: Path) -> None:
    """Replace folder ``target`` by the finished folder ``new`` (same parent); the old one is removed after.

    A kill between the two renames leaves no ``target`` (and a complete ``.NAME.old.<pid>`` that the next
    writer sweeps): never a mix of old and new files.
    """
    os.chmod(new, umask_mode(directory=True))
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)


@contextmanager
def building_dir(target: str | Path) -> Iterator[Path]:
    """Build a folder in a temporary beside ``target``; on success it replaces ``target`` in one rename.

    On an exception the temporary is removed and ``target`` is untouched; on kill -9 the temporary stays
    until the next writer of ``target`` sweeps it. Write reports and manifests inside the temporary too,
    so that an output and its report always come from the same run.
    """
    target = Path(target)
    tmp = make_temp_dir(target)
    try:
        yield tmp
        swap_in_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
