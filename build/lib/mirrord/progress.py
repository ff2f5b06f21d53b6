"""A one-line progress display for long commands, shown only on a terminal.

When stderr is not a TTY (a systemd timer, a pipe, the test suite) nothing is
written at all, so logs and captured output stay clean. Redraws are throttled.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`update(label, **counts)` redraws one status line; `close()` clears it."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None,
                 interval: float = 0.2, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = _isatty(self.stream)
        self.enabled = enabled
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last_draw = 0.0
        self.width = 0

    def restart(self) -> None:
        """Start measuring the rate anew (a new target)."""
        self.started = self.clock()

    def update(self, label: str, rate_of: int, *, force: bool = False, **counts: int) -> None:
        """Redraw: `rate_of` is the count the rate is computed from (items per second)."""
        if not self.enabled:
            return
        now = self.clock()
        if not force and now - self.last_draw < self.interval:
            return
        self.last_draw = now
        self._draw(format_line(label, rate_of, now - self.started, counts))

    def close(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0

    def _draw(self, line: str) -> None:
        pad = max(0, self.width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self.width = len(line)


def format_line(label: str, rate_of: int, elapsed: float, counts: dict[str, int]) -> str:
    rate = rate_of / elapsed if elapsed > 0 else 0.0
    parts = [f"{label}: {rate_of:,} ({rate:,.0f}/s)"]
    parts += [f"{name.replace('_', ' ')} {value:,}" for name, value in counts.items()]
    return "  ".join(parts) + f"  {elapsed:.0f}s"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
