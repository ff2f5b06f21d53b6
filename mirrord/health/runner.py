"""One measurement at a time, at most once per interval, shared by every caller.

However many clients poll /ready (HAProxy, keepalived, Prometheus, people),
the database is asked at most once per `interval` seconds: a caller gets the
cached result while it is younger than that, else it starts the one run (or
joins the run already under way) and waits for it, at most until `timeout`
seconds after that run began. A run that takes longer (a database that
accepts connections and then hangs) is reported as such instead of holding
the caller; it is not started again while it still hangs, so hanging threads
never pile up.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("mirrord.health")


class Runner(Generic[T]):
    def __init__(self, measure: Callable[[], T], *, interval: float, timeout: float,
                 monotonic: Callable[[], float] = time.monotonic):
        """`measure` is called in a worker thread; `interval` and `timeout` are seconds."""
        self.measure, self.interval, self.timeout = measure, interval, timeout
        self.monotonic = monotonic
        self._cond = threading.Condition()
        self._result: T | None = None
        self._error = ""
        self._finished: float | None = None     # monotonic time the last run ended
        self._running: float | None = None      # monotonic time the current run began
        self._generation = 0                    # counts finished runs
        self.runs = 0                           # runs started (for tests and logs)

    def get(self) -> tuple[T | None, str]:
        """(result, "") when a run finished within the interval or finishes in time;
        (None, why) when the run raised or did not finish within `timeout`."""
        with self._cond:
            if self._fresh():
                return self._result, self._error
            if self._running is None:
                self._start()
            generation, deadline = self._generation, self._running + self.timeout
            while self._generation == generation:
                remaining = deadline - self.monotonic()
                if remaining <= 0:
                    ran = self.monotonic() - self._running
                    return None, (f"the checks have been running for {ran:.1f}s, longer than "
                                  f"their {self.timeout:g}s timeout: the database or the "
                                  "heartbeat target does not answer")
                self._cond.wait(remaining)
            return self._result, self._error

    def _fresh(self) -> bool:
        return (self._running is None and self._finished is not None
                and self.monotonic() - self._finished < self.interval)

    def _start(self) -> None:
        self._running = self.monotonic()
        self.runs += 1
        threading.Thread(target=self._run, name="mirrord-health-check", daemon=True).start()

    def _run(self) -> None:
        result, error = None, ""
        try:
            result = self.measure()
        except Exception as exc:   # reported to every caller; the service keeps serving
            log.exception("health check run failed")
            error = f"the checks failed: {type(exc).__name__}: {exc}"
        with self._cond:
            self._result, self._error = result, error
            self._finished, self._running = self.monotonic(), None
            self._generation += 1
            self._cond.notify_all()
