"""CPU seconds and memory of a process and its descendants, from Linux's /proc (no psutil dependency).

Speed on a shared machine is measured as work per CPU-second, not per wall second: a loader that delivers
250 images per CPU-second does so whatever else the machine runs, while its images per wall second fall
with the load. Memory is reported as RSS (double-counts pages a forked worker shares with its parent),
USS (pages only that process holds) and PSS (shared pages split among the processes that map them; the
PSS of a process tree adds up to the memory it really occupies). Outside Linux every figure is None.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds", "memory_mb", "process_tree"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_tree(pid: int | None = None) -> list[int]:
    """``pid`` (default: this process) and every live descendant."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds the processes have used so far (those that exited are not counted)."""
    if not Path("/proc/self/stat").is_file():
        return None
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])   # utime, stime (fields 14 and 15 of proc(5))
    return total / _TICKS


def memory_mb(pids: list[int]) -> dict[str, float] | None:
    """Summed RSS, PSS and USS (MiB) of the processes, from /proc/PID/smaps_rollup."""
    if not Path("/proc/self/smaps_rollup").is_file():
        return None
    kb = {"rss": 0, "pss": 0, "uss": 0}
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        values = {k.rstrip(":"): int(v) for k, v, *_ in (line.split() for line in lines[1:])}
        kb["rss"] += values.get("Rss", 0)
        kb["pss"] += values.get("Pss", 0)
        kb["uss"] += values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return {k: round(v / 1024, 1) for k, v in kb.items()}
