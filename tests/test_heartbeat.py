"""The log's progress lines: at most one per interval, with the right counts, rate and time left."""

from __future__ import annotations

import logging

from au_ttt.train.heartbeat import Heartbeat


def test_one_line_per_interval_with_rate_and_time_left(caplog) -> None:
    now = [0.0]
    beat = Heartbeat(logging.getLogger("hb"), "scoring frames", total=1000, every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="hb"):
        for _ in range(10):          # 100 frames every 10 s: 10 frames/s
            now[0] += 10
            beat.tick(100, loss="0.5")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["scoring frames: 600/1000 (60 %), 10.0/s, about 0 min 40 s left, loss 0.5"]


def test_a_short_loop_logs_nothing(caplog) -> None:
    beat = Heartbeat(logging.getLogger("hb2"), "x", total=10, every_s=60, clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="hb2"):
        beat.tick(10)
    assert not caplog.records
