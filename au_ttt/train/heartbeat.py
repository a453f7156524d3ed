"""Progress lines in the log for long loops: what a batch job's log shows instead of a progress bar.

Why: on Slurm or under Snakemake (``--no-progress``) a training epoch over 100 k frames or the scoring of a
130 k-frame target is silent for hours; a line at most every ``every_s`` seconds (done/total, images per
second, time left) says the job is alive and when it will end, without flooding the log.
"""

from __future__ import annotations

import logging
import time

__all__ = ["Heartbeat"]


class Heartbeat:
    """``tick(n)`` after each batch of ``n`` items; logs ``what: done/total (p %), rate/s, ~ETA`` at most every
    ``every_s`` seconds, and nothing for loops shorter than that."""

    def __init__(self, log: logging.Logger, what: str, total: int, every_s: float = 60.0,
                 clock=time.monotonic) -> None:
        self.log, self.what, self.total, self.every_s, self.clock = log, what, total, every_s, clock
        self.start = self.last = clock()
        self.done = 0

    def tick(self, n: int, **extra: str) -> None:
        self.done += n
        now = self.clock()
        if now - self.last < self.every_s:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 and self.total else float("nan")
        more = "".join(f", {k} {v}" for k, v in extra.items())
        self.log.info("%s: %d/%d (%.0f %%), %.1f/s, about %s left%s", self.what, self.done, self.total,
                      100 * self.done / max(self.total, 1), rate, _duration(left), more)


def _duration(seconds: float) -> str:
    if seconds != seconds:  # nan: no rate yet
        return "?"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min" if hours else f"{m} min {s:02d} s"
