"""Progress lines: when they are due, what they say, and that short steps stay quiet (a fake clock, no sleeps)."""

from __future__ import annotations

import logging

import pytest

from kalm.progress import ProgressLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="test.progress")
    return caplog


def test_every_quarter_of_a_known_total_with_the_rate_since_the_last_line(
    log: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    progress = ProgressLog(
        logging.getLogger("test.progress"), "train soup", 40, "steps", every_fraction=0.25, clock=clock
    )
    logged = []
    for step in range(1, 41):
        clock.now += 0.5  # 2 steps/s
        if progress.update(step, loss=0.123456):
            logged.append(step)
    assert logged == [10, 20, 30, 40]
    assert log.messages[0] == "train soup: 10/40 steps (25%), 2.0 steps/s, loss 0.1235"
    assert log.messages[-1].startswith("train soup: 40/40 steps (100%), 2.0 steps/s")


def test_unknown_total_logs_on_time_and_closes_only_a_long_step(log: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = ProgressLog(
        logging.getLogger("test.progress"), "collect big", unit="rows", every_s=60, clock=clock
    )
    for rows in range(1000, 20_001, 1000):
        clock.now += 10  # 100 rows/s; the minute counts from the first update
        progress.update(rows)
    progress.finish(20_000, written=19_990)
    assert log.messages == [
        "collect big: 7,000 rows, 100.0 rows/s",
        "collect big: 13,000 rows, 100.0 rows/s",
        "collect big: 19,000 rows, 100.0 rows/s",
        "collect big: 20,000 rows, 100.0 rows/s, written 19990",
    ]

    log.clear()
    short = ProgressLog(logging.getLogger("test.progress"), "collect small", unit="rows", clock=clock)
    for rows in range(1, 100):
        clock.now += 0.01
        short.update(rows)
    short.finish(99)
    assert log.messages == []
