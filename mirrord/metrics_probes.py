"""The daemon's /live and /ready answers: is the main loop turning, is every target in sync.

- /live: the loop turned within the last WatchdogSec (when systemd's watchdog is
  on) or 2 x heartbeat_interval (at least LIVE_FLOOR seconds); not live before
  the first turn (while watches are placed and targets opened).
- /ready: every target is `in_sync` (mirrord/target_state.py); not ready before
  the first heartbeat decided any.

mirrord.metrics.Metrics owns one Probes and mirrord.metrics_http serves its answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from mirrord import notify
from mirrord.target_state import IN_SYNC, TargetState

LIVE_WITHIN = 10.0   # seconds: 2 x the default heartbeat_interval, until set_live_window()
LIVE_FLOOR = 5.0     # seconds: the shortest /live window set_live_window() picks


class Probes:
    """The last loop turn and the last target states; every method is safe from any thread."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic):
        self._monotonic = monotonic
        self._turned: float | None = None
        self.live_within = LIVE_WITHIN
        self._states: dict[str, TargetState] = {}
        self._lock = threading.Lock()

    def set_states(self, states: Mapping[str, TargetState]) -> None:
        """Remember each target's state (TargetStates.update()) for ready()."""
        with self._lock:
            self._states = dict(states)

    def ready(self) -> tuple[bool, dict]:
        """(every target in_sync, the /ready body: {"ready", "targets": {t: state, lag, reason}})."""
        with self._lock:
            states = dict(self._states)
        ok = bool(states) and all(st.state == IN_SYNC for st in states.values())
        doc: dict = {"ready": ok, "targets": {t: {"state": st.state,
                                                  "lag_seconds": round(st.lag_seconds, 3),
                                                  "reason": st.reason}
                                              for t, st in sorted(states.items())}}
        if not states:
            doc["note"] = "no target state yet: the daemon has not written its first heartbeat"
        return ok, doc

    def set_live_window(self, heartbeat_interval: float, watchdog_sec: float | None = None) -> float:
        """/live's window in seconds: WatchdogSec when systemd's watchdog is on (by default read
        from $WATCHDOG_USEC, sd_watchdog_enabled(3)), else 2 x heartbeat_interval (at least
        LIVE_FLOOR)."""
        if watchdog_sec is None:
            half = notify.watchdog_interval()     # notify pings at half of WatchdogSec
            watchdog_sec = 2 * half if half else None
        # at least LIVE_FLOOR: an idle loop waits up to 1 s for events per turn, so a short
        # heartbeat_interval must not make /live flap
        self.live_within = watchdog_sec or max(LIVE_FLOOR, 2 * heartbeat_interval)
        return self.live_within

    def loop_turned(self, now: float) -> None:
        """The daemon's main loop completed a cycle at `now` (time.monotonic() seconds)."""
        self._turned = now

    def live(self) -> tuple[bool, str]:
        """(the loop turned within live_within seconds, a one-line explanation)."""
        turned = self._turned
        if turned is None:
            return False, "main loop has not turned yet (starting)\n"
        age = max(0.0, self._monotonic() - turned)
        ok = age <= self.live_within
        verdict = "turned" if ok else "STUCK: last turned"
        return ok, f"main loop {verdict} {age:.1f}s ago (limit {self.live_within:g}s)\n"
