"""Progress of a long step as log lines: a few lines a person can follow in a log, each with a rate.

Why lines and not a bar: a flow run's log (a worker's console, the Prefect UI) keeps every line, so a bar
redrawn ten times a second floods it, while a line at each quarter of the work, or every minute, says how far
the step is and how fast it goes. A step that finishes before its first line is due logs nothing, so small
steps (the demo's encodes) stay quiet and only long ones speak.

The logger decides where lines go: a module logger of ``kalm``/``data_catalog`` reaches the console and, inside
a flow run, the Prefect UI (:mod:`kalm.runtime`); a Prefect run logger carries its run with it, which a thread
of its own (the training-log follower) needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

Logger = logging.Logger | logging.LoggerAdapter


class ProgressLog:
    """Logs ``label: done/total unit (pct), rate unit/s, details`` when a line is due.

    A line is due every ``every_s`` seconds, and (with a known ``total`` and ``every_fraction``) each time
    another ``every_fraction`` of the total is done; the rate is over the time since the previous line (since
    the first update for the first line), so a slow start-up does not drag it down.
    """

    def __init__(
        self,
        logger: Logger,
        label: str,
        total: int | None = None,
        unit: str = "rows",
        *,
        every_s: float = 60.0,
        every_fraction: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.label, self.total, self.unit = logger, label, total, unit
        self.every_s, self.every_fraction, self.clock = every_s, every_fraction, clock
        self.lines = 0
        self._line_at = 0.0  # when the last line was logged (the first update starts the clock)
        self._rate_from: tuple[float, int] | None = None  # (time, done) the next line's rate is measured from
        self._next_mark = self._mark_after(0)

    def update(self, done: int, **details: Any) -> bool:
        """Record that ``done`` units are done; log a line if one is due. Returns whether it logged."""
        now = self.clock()
        if self._rate_from is None:
            self._rate_from = (now, done)
            self._line_at = now
        due = now - self._line_at >= self.every_s or (self._next_mark is not None and done >= self._next_mark)
        if due:
            self._log(done, now, details)
        return due

    def finish(self, done: int, **details: Any) -> None:
        """The closing line, when the step was long enough to have logged before (else it stays quiet) and
        has done more since its last line."""
        if self.lines and self._rate_from is not None and done != self._rate_from[1]:
            self._log(done, self.clock(), details)

    def _log(self, done: int, now: float, details: dict[str, Any]) -> None:
        if self.total is None:
            parts = [f"{done:,} {self.unit}"]
        else:
            parts = [f"{done:,}/{self.total:,} {self.unit} ({100 * done / max(self.total, 1):.0f}%)"]
        since, done_then = self._rate_from or (now, done)
        if now > since and done > done_then:
            parts.append(f"{(done - done_then) / (now - since):,.1f} {self.unit}/s")
        parts += [f"{key} {_fmt(value)}" for key, value in details.items()]
        self.logger.info("%s: %s", self.label, ", ".join(parts))
        self.lines += 1
        self._line_at, self._rate_from = now, (now, done)
        self._next_mark = self._mark_after(done)

    def _mark_after(self, done: int) -> float | None:
        if not self.total or not self.every_fraction:
            return None
        step = self.every_fraction * self.total
        return (int(done / step + 1e-9) + 1) * step


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
