"""Process pools whose workers never outlive the command that started them.

A killed ``au-ttt landmarks --workers N`` used to leave its detector processes running forever. Two
mechanisms close that:

- every worker asks the Linux kernel for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``,
  prctl(2)), which covers kill -9 of the parent. The kernel ties this to the *thread* that forked the
  worker: with the ``fork`` start method, :class:`~concurrent.futures.ProcessPoolExecutor` (CPython 3.11,
  ``_start_executor_manager_thread``) forks all workers in the thread that first submits work, here the
  main thread, which lives as long as the process. We therefore fix the start method to ``fork`` and start
  the workers at once, before progress bars start threads of their own;
- SIGTERM (Slurm's ``scancel``, Snakemake's shutdown) and SIGINT in the parent become ``SystemExit`` /
  ``KeyboardInterrupt`` in the main thread, and leaving :func:`worker_pool` with an exception kills the
  workers before the pool is shut down, so nothing waits for chunks still being computed.

Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group; the parent decides) and keep
the default SIGTERM action.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["die_with_parent", "worker_pool"]

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """In a worker (or a ``preexec_fn``): get ``sig`` when the parent dies; exit now if it already has.

    SIGKILL suits a worker with nothing to clean up; a child that must stop children of its own (a server
    and its workers) asks for SIGTERM and handles it.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): this worker may outlive a killed parent",
                        ctypes.get_errno())
    if os.getppid() != parent_pid:   # the parent died between fork and prctl
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _init_worker(parent_pid: int, init: Callable[..., Any] | None, args: tuple) -> None:
    die_with_parent(parent_pid)
    if init is not None:
        init(*args)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL every worker of ``pool`` now (Python ≥ 3.14 has a public method for this)."""
    kill = getattr(pool, "kill_workers", None)
    if kill is not None:
        kill()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.kill()


@contextlib.contextmanager
def worker_pool(workers: int, initializer: Callable[..., Any] | None = None,
                initargs: tuple = ()) -> Iterator[ProcessPoolExecutor]:
    """A started ``fork`` pool of ``workers`` processes that die with this process (see module doc)."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_worker, initargs=(os.getpid(), initializer, initargs))
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_signal) if main else None
    try:
        pool.submit(int).result()        # forks every worker now, from this (the main) thread
        yield pool
    except BaseException:
        kill_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
