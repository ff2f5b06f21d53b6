"""The daemon's metrics: the one object the daemon, shipper and watcher call to count.

Everything lives on a `CollectorRegistry` owned by one `Metrics` object, never
on prometheus_client's global registry, so tests and two daemons in one
process do not collide. The daemon calls the small methods below; it never
touches prometheus_client itself. What each metric means:
mirrord/metrics_families.py; /live and /ready: mirrord/metrics_probes.py; the
HTTP endpoint (`metrics_listen`): mirrord/metrics_http.py.

Alert rules and a Grafana dashboard built on these: deploy/prometheus/ and
deploy/grafana/ (e.g. `mirrord_target_state{state="in_sync"} == 0` for 5m).
"""

from __future__ import annotations

import contextlib

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest

from mirrord import metrics_http
from mirrord.metrics_families import KINDS, OUTCOMES, Families, HeartbeatAge
from mirrord.metrics_probes import Probes
from mirrord.target_state import STATES, TargetState

RECONCILE_BYTES_KEY = "bytes"


class Metrics:
    """The daemon's metrics on their own registry; every method is safe from any thread."""

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.registry = CollectorRegistry(auto_describe=True)
        self._server: ThreadingHTTPServer | None = None
        self._probes = Probes(monotonic=monotonic)
        # per-op children, looked up once: labels() takes a lock and checks its arguments on
        # every call, a measurable part of a worker's time per 4 KiB file (issue 15)
        self._op_children: dict[tuple[str, str, str], object] = {}
        self._latency_children: dict[str, object] = {}
        self._reconcile_results: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._fam = Families(self.registry)
        self._heartbeat = HeartbeatAge(clock)
        self.registry.register(self._heartbeat)

    # ------------------------------------------------------------ journal / shipper

    def add_target(self, target: str) -> None:
        """Create the target's series at zero, so rate() and absent() work before the first change."""
        self.set_pending(target, 0, 0, 0.0)
        for kind in KINDS:
            for outcome in OUTCOMES:
                self._fam.ops.labels(target, kind, outcome)
        self._fam.latency.labels(target)

    def add_source(self, source: str) -> None:
        """Create the source's alarm series at zero: a counter whose series first appears
        at 1 shows no increase() for its first alarm (Prometheus has no sample before it),
        so `increase(mirrord_mass_change_alarms_total[10m]) > 0` missed a first alarm."""
        self._fam.alarms.labels(source)   # the gauges are the alarm's own to set (held!)

    def add_cycle_steps(self, steps: Iterable[str]) -> None:
        """Create each main-loop step's error counter at zero (as add_source, for the
        first error of a step)."""
        for step in steps:
            self._fam.cycle_errors.labels(step)

    def set_pending(self, target: str, ops: int, bytes_: int, oldest_age: float) -> None:
        self._fam.pending_ops.labels(target).set(ops)
        self._fam.pending_bytes.labels(target).set(bytes_)
        self._fam.oldest.labels(target).set(max(0.0, oldest_age))

    def shipped(self, target: str, kind: str, latency: float | None = None) -> None:
        """One op applied (called from worker threads); `latency` in seconds."""
        self._op_child(target, kind, "shipped").inc()
        if latency is not None:
            child = self._latency_children.get(target)
            if child is None:
                child = self._latency_children[target] = self._fam.latency.labels(target)
            child.observe(max(0.0, latency))

    def failed(self, target: str, kind: str) -> None:
        self._op_child(target, kind, "failed").inc()

    def _op_child(self, target: str, kind: str, outcome: str):
        """The operations counter's child for these labels. Two threads missing the cache
        at once both call labels(), which hands both the same child: no count is lost."""
        key = (target, kind, outcome)
        child = self._op_children.get(key)
        if child is None:
            child = self._op_children[key] = self._fam.ops.labels(target, kind, outcome)
        return child

    def set_trash(self, target: str, *, files: int, bytes_: int, oldest: float | None,
                  purged: int = 0) -> None:
        """The target's trash after a retention run (mirrord.trash.retention.Summary):
        files and bytes kept, the oldest kept change (seconds; None: empty), files purged."""
        self._fam.trash_files.labels(target).set(files)
        self._fam.trash_bytes.labels(target).set(bytes_)
        if oldest is None:   # absent, not 0: an "oldest kept age" alert read 0 as 56 years
            with contextlib.suppress(KeyError):
                self._fam.trash_oldest.remove(target)
        else:
            self._fam.trash_oldest.labels(target).set(oldest)
        self._fam.trash_purged.labels(target).inc(purged)

    # ------------------------------------------------------------------- watcher

    def overflow(self) -> None:
        self._fam.overflows.inc()

    def cycle_error(self, step: str) -> None:
        self._fam.cycle_errors.labels(step).inc()

    def watch_error(self) -> None:
        self._fam.watch_errors.inc()

    def set_watched_dirs(self, n: int) -> None:
        self._fam.watched.set(n)

    def set_unwatched_dirs(self, source: str, n: int) -> None:
        self._fam.unwatched.labels(source).set(n)

    def set_unread_seconds(self, source: str, seconds: float) -> None:
        """Seconds the source's watcher has not found its event queue empty (read_lag)."""
        self._fam.unread.labels(source).set(seconds)

    def set_alarm(self, source: str, *, active: bool, count: int, held: bool) -> None:
        """The source's mass-change alarm (mirrord.daemon_alarm): firing, changes counted in
        the window, deletes held."""
        self._fam.alarm.labels(source).set(1 if active else 0)
        self._fam.alarm_count.labels(source).set(count)
        self._fam.held.labels(source).set(1 if held else 0)

    def alarm_fired(self, source: str) -> None:
        self._fam.alarms.labels(source).inc()

    # ----------------------------------------------------------- reconcile, heartbeat

    def reconcile_done(self, target: str, finished_at: float, duration: float,
                       counts: Mapping[str, int]) -> None:
        """Record one finished pass; results missing from `counts` that an earlier pass had drop to 0."""
        self._fam.rec_last.labels(target).set(finished_at)
        self._fam.rec_duration.labels(target).set(duration)
        files = {k: v for k, v in counts.items() if k != RECONCILE_BYTES_KEY}
        self._fam.rec_bytes.labels(target).set(counts.get(RECONCILE_BYTES_KEY, 0))
        with self._lock:
            seen = self._reconcile_results.setdefault(target, set())
            for result in seen - files.keys():
                self._fam.rec_files.labels(target, result).set(0)
            seen.update(files)
        for result, value in files.items():
            self._fam.rec_files.labels(target, result).set(value)

    def heartbeat_written(self, target: str, at: float) -> None:
        self._heartbeat.written(target, at)

    # ------------------------------------------------------- target states, liveness

    def set_target_states(self, states: Mapping[str, TargetState]) -> None:
        """Publish each target's state and lag (TargetStates.update()) to the gauges and /ready."""
        for target, st in states.items():
            for name in STATES:
                self._fam.state.labels(target, name).set(1 if name == st.state else 0)
            self._fam.lag.labels(target).set(max(0.0, st.lag_seconds))
        self._probes.set_states(states)

    def ready(self) -> tuple[bool, dict]:
        """Probes.ready: (every target in_sync, the /ready JSON body)."""
        return self._probes.ready()

    def set_live_window(self, heartbeat_interval: float, watchdog_sec: float | None = None) -> float:
        """Probes.set_live_window: /live's window in seconds (WatchdogSec, else 2 x
        heartbeat_interval, at least LIVE_FLOOR)."""
        return self._probes.set_live_window(heartbeat_interval, watchdog_sec)

    @property
    def live_within(self) -> float:
        """/live's window in seconds (set_live_window)."""
        return self._probes.live_within

    def loop_turned(self, now: float) -> None:
        """The daemon's main loop completed a cycle at `now` (time.monotonic() seconds)."""
        self._probes.loop_turned(now)

    def live(self) -> tuple[bool, str]:
        """Probes.live: (the loop turned within live_within seconds, a one-line explanation)."""
        return self._probes.live()

    # ---------------------------------------------------------------- exposition

    def render(self) -> bytes:
        """The text exposition format, as a scrape would see it."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP endpoint (/metrics, /live, /ready: mirrord.metrics_http) on a daemon
        thread; returns the bound address (port 0 picks one). OSError when the address cannot
        be bound; RuntimeError when already started."""
        if self._server is not None:
            raise RuntimeError("metrics endpoint already started")
        self._server = server = metrics_http.start(self.registry, self._probes, host, port)
        bound = server.server_address
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        """Stop the HTTP endpoint, if started."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
