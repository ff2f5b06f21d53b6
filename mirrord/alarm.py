"""The live mass-change alarm's arithmetic: a sliding-window count per source and its state.

`[source:NAME]` sets `alarm_deletes` (default 1000), `alarm_window` (default 60 s)
and `pause_on_alarm` (default no). More than `alarm_deletes` deletes or
overwrites recorded from the live stream within `alarm_window` seconds make the
source's alarm fire: once, on the edge, not once per change. It clears by
itself when the window slides back to `alarm_deletes` or fewer, and fires again
(re-arms) the next time the count goes over. It is the live counterpart of
reconcile's `max_delete`: a `rm -rf`, a broken maintenance script or ransomware
on the primary reaches every target within milliseconds otherwise.

Pure: no I/O, no journal, no logging. Time comes from an injectable clock
(seconds, monotonic by default), so tests drive it by hand. What the daemon
does when an alarm fires (log, metric, hold deletes in the journal) lives in
mirrord.daemon_alarm.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

DEFAULT_DELETES = 1000
DEFAULT_WINDOW = 60.0      # seconds
BUCKET = 0.25              # seconds: counts closer together than this share one deque entry


@dataclass(frozen=True)
class AlarmSettings:
    """One source's alarm keys: `threshold` changes (more than it fires) within `window`
    seconds; `pause` holds the source's deletes when it fires (until resume-deletes)."""

    threshold: int = DEFAULT_DELETES
    window: float = DEFAULT_WINDOW
    pause: bool = False


class SlidingCount:
    """How many events happened within the last `window` seconds.

    Events are kept in buckets of BUCKET seconds, so memory is bounded by
    window / BUCKET entries however many events arrive (an rm -rf of a million
    files is one entry per quarter second, not a million). A bucket leaves the
    window whole once its newest event is `window` seconds old: the count errs by
    at most one bucket's worth (BUCKET seconds) toward still counting, never
    toward forgetting."""

    def __init__(self, window: float, *, clock: Callable[[], float] = time.monotonic):
        if window <= 0:
            raise ValueError(f"window must be positive seconds, got {window!r}")
        self.window = window
        self.clock = clock
        self._buckets: deque[list] = deque()   # [first time, last time, count], oldest first
        self._total = 0

    def add(self, n: int = 1, now: float | None = None) -> int:
        """Count `n` events at `now` (default: the clock); returns the count in the window."""
        now = self.clock() if now is None else now
        self._expire(now)
        if n > 0:
            last = self._buckets[-1] if self._buckets else None
            if last is not None and now - last[0] < BUCKET:
                last[1] = max(last[1], now)
                last[2] += n
            else:
                self._buckets.append([now, now, n])
            self._total += n
        return self._total

    def count(self, now: float | None = None) -> int:
        """Events within the last `window` seconds as of `now` (default: the clock)."""
        self._expire(self.clock() if now is None else now)
        return self._total

    def ages(self, now: float | None = None) -> list[tuple[float, int]]:
        """What is in the window as (age, count) pairs, oldest first: age in seconds before
        `now` (default: the clock) of each bucket's newest event (mirrord.alarm_window
        keeps them across a restart)."""
        now = self.clock() if now is None else now
        self._expire(now)
        return [(max(0.0, now - last), n) for _first, last, n in self._buckets]

    def seed(self, ages: list[tuple[float, int]], now: float | None = None) -> int:
        """Count again what ages() gave (ages in seconds before `now`, default: the clock),
        before anything else is added; a negative age counts as 0, one of `window` or more
        is dropped. Returns the count in the window."""
        now = self.clock() if now is None else now
        for age, n in sorted(ages, key=lambda pair: -pair[0]):
            age = max(0.0, float(age))
            if age < self.window and n > 0:
                self._buckets.append([now - age, now - age, int(n)])
                self._total += int(n)
        return self._total

    def _expire(self, now: float) -> None:
        while self._buckets and now - self._buckets[0][1] >= self.window:
            self._total -= self._buckets.popleft()[2]


class SourceAlarm:
    """One source's alarm: the sliding count and whether it is firing.

    `fired_at` is the clock time of the last firing (None before the first);
    `fired` counts firings since start. Pausing is not kept here: a pause
    outlives the alarm and a restart, so the journal keeps it (mirrord.journal.holds)."""

    def __init__(self, source: str, settings: AlarmSettings, *,
                 clock: Callable[[], float] = time.monotonic):
        self.source = source
        self.settings = settings
        self.clock = clock
        self.window = SlidingCount(settings.window, clock=clock)
        self.active = False
        self.fired_at: float | None = None
        self.fired = 0

    def add(self, n: int = 1) -> bool:
        """Count `n` deletes or overwrites now. True exactly when this call made the alarm
        fire (the count went over the threshold while it was not firing)."""
        total = self.window.add(n)
        if not self.active and total > self.settings.threshold:
            self.active = True
            self.fired_at = self.clock()
            self.fired += 1
            return True
        return False

    def update(self) -> bool:
        """Slide the window to now. True exactly when this call cleared the alarm (the
        count fell back to the threshold or below); the alarm re-arms then."""
        if self.active and self.window.count() <= self.settings.threshold:
            self.active = False
            return True
        return False

    def reset(self) -> None:
        """Forget what was counted and re-arm (mirrord resume-deletes: the operator let what
        was counted go, so the next mass change fires again, however soon)."""
        self.window = SlidingCount(self.settings.window, clock=self.clock)
        self.active = False

    def count(self) -> int:
        """Deletes and overwrites within the window, now."""
        return self.window.count()

    def to_json(self) -> dict:
        """For the daemon's state row (`mirrord status`): state is 'alarm' or 'ok'."""
        return {"state": "alarm" if self.active else "ok", "count": self.count(),
                "alarm_deletes": self.settings.threshold, "alarm_window": self.settings.window,
                "pause_on_alarm": self.settings.pause, "fired": self.fired}
