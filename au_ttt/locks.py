"""Exclusive locks that a killed process cannot leave behind: ``fcntl.flock`` held by an open descriptor.

The kernel drops a flock when the last descriptor of its open file is closed, which happens when the
process exits in any way, kill -9 included (flock(2)); so a lock is never stale, and nobody has to guess
from a pid whether its holder still runs. The lock file only records who holds it (pid, host, start time,
command) for the message of whoever is refused.

:func:`run_dir_lock` holds an output folder (``au-ttt train --out``, ``au-ttt pretrain --out``) for one
process: two runs writing one folder would otherwise mix their checkpoints, records and MLflow artifacts
and both exit 0. Its lock file lives beside the folder (``.NAME.lock``, the naming of :mod:`au_ttt.fileio`),
so the folder's content stays what the run wrote, and is removed by a holder that ends normally.
flock is reliable on local disks; over NFS it depends on the server (Linux nfs(5): emulated with POSIX locks).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from au_ttt.errors import InputError

__all__ = ["run_dir_lock", "run_lock_path", "try_flock"]


def try_flock(path: Path, holder: str) -> int | None:
    """Open ``path`` (created if needed) and take a non-blocking exclusive flock: the descriptor, or None if
    another process holds it. ``holder`` is written into the file (best effort) for the next one's message."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file in a shared dir: flock works read-only too
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
    except OSError:
        pass
    return fd


def run_lock_path(out: str | Path) -> Path:
    """``<parent>/.<name>.lock`` of an output folder (its real path: two spellings of one folder share it)."""
    out = Path(out).resolve()
    return out.parent / f".{out.name}.lock"


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _holder_line() -> str:
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    return f"pid {os.getpid()} on {socket.gethostname()}, started {started}: {command}\n"


@contextlib.contextmanager
def run_dir_lock(out: str | Path) -> Iterator[Path]:
    """Hold output folder ``out`` for this process, or raise :class:`InputError` naming the process that does.

    Yields the lock file's path. Locks are per process: children that inherit the descriptor (forked
    DataLoader workers) keep it held until they exit too; exec'd children do not inherit it.
    """
    out = Path(out)
    path = run_lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = try_flock(path, _holder_line())
        if fd is None:
            try:
                holder = path.read_text().strip()
            except OSError:
                holder = ""
            raise InputError(
                f"{out}: another process is writing this folder ({holder or 'it has not recorded itself yet'}); "
                f"wait for it to end or stop it, or give this run another --out (lock file {path}; a killed "
                "holder releases it by itself)")
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder before us removed the file between our open and our lock: lock the new one
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):  # still locked here, so no other process can be using this file
            path.unlink()
        os.close(fd)
