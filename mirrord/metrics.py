"""Prometheus metrics: what the daemon counts, and the HTTP endpoint that serves them.

Everything lives on a `CollectorRegistry` owned by one `Metrics` object, never
on prometheus_client's global registry, so tests and two daemons in one
process do not collide. The daemon calls the small methods below; it never
touches prometheus_client itself. Enabled by `metrics_listen = HOST:PORT` in
`[mirrord]`, which serves (the same HTTP handling as `mirrord health` on the
mirror host, mirrord/health/service.py):

- GET /metrics: the text exposition format.
- GET /live: 200 when the main loop turned within the last WatchdogSec (when
  systemd's watchdog is on) or 2 x heartbeat_interval (at least 5 s); else
  503, also before the first turn (while watches are placed and targets opened).
- GET /ready: 200 when every target is `in_sync` (mirrord/target_state.py),
  else 503 (also before the first heartbeat decided any); the JSON body lists
  each target's state, lag_seconds and reason.
- HEAD and OPTIONS on /live and /ready: the same status without a body
  (HAProxy's `option httpchk` sends OPTIONS).

Metrics (all names carry the `mirrord_` prefix):

- `mirrord_pending_operations{target}` (gauge): changes in the journal not yet
  shipped to the target.
- `mirrord_pending_bytes{target}` (gauge): size in bytes of the files those
  pending changes will upload.
- `mirrord_oldest_pending_seconds{target}` (gauge): age of the oldest pending
  change; 0 when nothing is pending. The replication-lag alert watches this.
- `mirrord_operations_total{target,kind,outcome}` (counter): changes applied to
  a target; kind is put, meta (mode and mtime only), delete, move or mkdir; outcome is shipped or failed
  (a failed attempt that is retried later counts once per attempt).
- `mirrord_replication_latency_seconds{target}` (histogram): seconds from a
  file's close (or rename into the tree) to its arrival on the target; buckets
  from 5 ms to 60 s.
- `mirrord_inotify_overflows_total` (counter): kernel event-queue overflows,
  each followed by a rescan.
- `mirrord_watch_errors_total` (counter): watches that could not be added
  (watch limit reached, permission denied, directory vanished).
- `mirrord_watched_directories` (gauge): directories currently under an
  inotify watch.
- `mirrord_unwatched_directories{source}` (gauge): directories of the source
  that could not be watched; their watches are retried and their subtrees
  rescanned every few seconds meanwhile. The source is degraded while > 0.
- `mirrord_cycle_errors_total{step}` (counter): errors in a step of the main
  loop; the daemon logs them and carries on.
- `mirrord_reconcile_last_run_timestamp_seconds{target}` (gauge): Unix time at
  which the last reconcile pass for the target finished.
- `mirrord_reconcile_duration_seconds{target}` (gauge): how long that pass took.
- `mirrord_reconcile_files{target,result}` (gauge): what that pass found:
  result is compared, missing, changed, extra, deleted, errors (and any other
  count the pass reports); a result absent from a later pass drops to 0.
- `mirrord_reconcile_bytes{target}` (gauge): bytes that pass queued for upload.
- `mirrord_trash_files{target}`, `mirrord_trash_bytes{target}` (gauges): files and
  bytes kept in the target's trash (`keep_deleted`) after the last retention run;
  `mirrord_trash_oldest_timestamp_seconds{target}` (gauge): Unix time of the oldest
  kept change (0 when the trash is empty); `mirrord_trash_purged_total{target}`
  (counter): kept files purged by retention. Absent for targets that do not keep.
- `mirrord_heartbeat_age_seconds{target}` (gauge): seconds since the daemon
  last wrote the target's heartbeat file, computed when scraped; absent until
  the first heartbeat.
- `mirrord_target_state{target,state}` (gauge): 1 for the target's current
  state, 0 for the others; state is initial_sync, catching_up, in_sync,
  degraded or stalled (rules in mirrord/target_state.py). Absent until the
  first heartbeat.
- `mirrord_replication_lag_seconds{target}` (gauge): age of the oldest change
  not yet on the target, 0 when idle, as of the last heartbeat.
- `mirrord_mass_change_alarm{source}` (gauge): 1 while the source's live
  mass-change alarm fires (more than `alarm_deletes` deletes or overwrites within
  `alarm_window`: mirrord/alarm.py), back to 0 once the window slides under it.
- `mirrord_mass_changes_in_window{source}` (gauge): deletes and overwrites
  counted within the source's `alarm_window`.
- `mirrord_mass_change_alarms_total{source}` (counter): times the alarm fired.
- `mirrord_deletes_held{source}` (gauge): 1 while the source's deletes are held
  (`pause_on_alarm = yes`), until `mirrord resume-deletes`.

Alert rules and a Grafana dashboard built on these: deploy/prometheus/ and
deploy/grafana/ (e.g. `mirrord_target_state{state="in_sync"} == 0` for 5m).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from http.server import ThreadingHTTPServer
from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mirrord import notify
from mirrord.target_state import IN_SYNC, STATES, TargetState

KINDS = ("put", "meta", "delete", "move", "mkdir")
OUTCOMES = ("shipped", "failed")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RECONCILE_BYTES_KEY = "bytes"
LIVE_WITHIN = 10.0   # seconds: 2 x the default heartbeat_interval, until set_live_window()
LIVE_FLOOR = 5.0     # seconds: the shortest /live window set_live_window() picks


class _HeartbeatAge(Collector):
    """mirrord_heartbeat_age_seconds, computed at scrape time from the last write per target."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._lock = threading.Lock()
        self._written: dict[str, float] = {}

    def written(self, target: str, at: float) -> None:
        with self._lock:
            self._written[target] = at

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("mirrord_heartbeat_age_seconds",
                                   "Seconds since the target's heartbeat file was last written",
                                   labels=["target"])
        now = self._clock()
        with self._lock:
            written = sorted(self._written.items())
        for target, at in written:
            family.add_metric([target], max(0.0, now - at))
        yield family

    def describe(self) -> Iterable[Metric]:
        # Without describe() the registry would call collect() at registration time.
        return [GaugeMetricFamily("mirrord_heartbeat_age_seconds", "", labels=["target"])]


class Metrics:
    """The daemon's metrics on their own registry; every method is safe from any thread."""

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.registry = CollectorRegistry(auto_describe=True)
        self._server: ThreadingHTTPServer | None = None
        self._monotonic = monotonic
        self._turned: float | None = None
        # per-op children, looked up once: labels() takes a lock and checks its arguments on
        # every call, a measurable part of a worker's time per 4 KiB file (issue 15)
        self._op_children: dict[tuple[str, str, str], object] = {}
        self._latency_children: dict[str, object] = {}
        self.live_within = LIVE_WITHIN
        self._states: dict[str, TargetState] = {}
        self._reconcile_results: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._build(self.registry)
        self._heartbeat = _HeartbeatAge(clock)
        self.registry.register(self._heartbeat)

    def _build(self, r: CollectorRegistry) -> None:
        t = ["target"]
        self._pending_ops = Gauge("mirrord_pending_operations",
                                  "Changes in the journal not yet shipped to the target", t, registry=r)
        self._pending_bytes = Gauge("mirrord_pending_bytes",
                                    "Bytes of file content waiting to be shipped to the target", t, registry=r)
        self._oldest = Gauge("mirrord_oldest_pending_seconds",
                             "Age of the oldest change not yet shipped to the target (0 when none)",
                             t, registry=r)
        self._ops = Counter("mirrord_operations",
                            "Changes applied to a target, by kind and outcome (shipped or failed)",
                            ["target", "kind", "outcome"], registry=r)
        self._latency = Histogram("mirrord_replication_latency_seconds",
                                  "Seconds from a file's close to its arrival on the target",
                                  t, buckets=LATENCY_BUCKETS, registry=r)
        self._overflows = Counter("mirrord_inotify_overflows",
                                  "inotify event-queue overflows (each one triggers a rescan)", registry=r)
        self._cycle_errors = Counter("mirrord_cycle_errors",
                                     "Errors in a step of the daemon's main loop (survived: the "
                                     "loop goes on)", ["step"], registry=r)
        self._watch_errors = Counter("mirrord_watch_errors",
                                     "inotify watches that could not be added", registry=r)
        self._watched = Gauge("mirrord_watched_directories",
                              "Directories under an inotify watch", registry=r)
        self._unwatched = Gauge("mirrord_unwatched_directories",
                                "Directories of the source that could not be watched (retried, "
                                "and rescanned every few seconds until they are); the source is "
                                "degraded while this is above 0", ["source"], registry=r)
        self._rec_last = Gauge("mirrord_reconcile_last_run_timestamp_seconds",
                               "Unix time the last reconcile pass for the target finished", t, registry=r)
        self._rec_duration = Gauge("mirrord_reconcile_duration_seconds",
                                   "Duration of the last reconcile pass for the target", t, registry=r)
        self._rec_files = Gauge("mirrord_reconcile_files",
                                "Files the last reconcile pass found, by result",
                                ["target", "result"], registry=r)
        self._rec_bytes = Gauge("mirrord_reconcile_bytes",
                                "Bytes the last reconcile pass queued for upload", t, registry=r)
        self._state = Gauge("mirrord_target_state",
                            "1 for the target's current state (initial_sync, catching_up, in_sync, "
                            "degraded, stalled), 0 for the others", ["target", "state"], registry=r)
        self._lag = Gauge("mirrord_replication_lag_seconds",
                          "Age of the oldest change not yet on the target (0 when idle)", t, registry=r)
        self._trash_files = Gauge("mirrord_trash_files",
                                  "Files kept in the target's trash (keep_deleted)", t, registry=r)
        self._trash_bytes = Gauge("mirrord_trash_bytes",
                                  "Bytes kept in the target's trash (keep_deleted)", t, registry=r)
        self._trash_oldest = Gauge("mirrord_trash_oldest_timestamp_seconds",
                                   "Unix time of the oldest change kept in the target's trash "
                                   "(0 when empty)", t, registry=r)
        self._trash_purged = Counter("mirrord_trash_purged",
                                     "Kept files purged from the target's trash by retention",
                                     t, registry=r)
        src = ["source"]
        self._alarm = Gauge("mirrord_mass_change_alarm",
                            "1 while more than alarm_deletes deletes or overwrites happened on the "
                            "source within alarm_window", src, registry=r)
        self._alarm_count = Gauge("mirrord_mass_changes_in_window",
                                  "Deletes and overwrites on the source within alarm_window", src,
                                  registry=r)
        self._alarms = Counter("mirrord_mass_change_alarms",
                               "Times the source's mass-change alarm fired", src, registry=r)
        self._held = Gauge("mirrord_deletes_held",
                           "1 while the source's deletes are held after an alarm (until "
                           "mirrord resume-deletes)", src, registry=r)

    # ------------------------------------------------------------ journal / shipper

    def add_target(self, target: str) -> None:
        """Create the target's series at zero, so rate() and absent() work before the first change."""
        self.set_pending(target, 0, 0, 0.0)
        for kind in KINDS:
            for outcome in OUTCOMES:
                self._ops.labels(target, kind, outcome)
        self._latency.labels(target)

    def set_pending(self, target: str, ops: int, bytes_: int, oldest_age: float) -> None:
        self._pending_ops.labels(target).set(ops)
        self._pending_bytes.labels(target).set(bytes_)
        self._oldest.labels(target).set(max(0.0, oldest_age))

    def shipped(self, target: str, kind: str, latency: float | None = None) -> None:
        """One op applied (called from worker threads); `latency` in seconds."""
        self._op_child(target, kind, "shipped").inc()
        if latency is not None:
            child = self._latency_children.get(target)
            if child is None:
                child = self._latency_children[target] = self._latency.labels(target)
            child.observe(max(0.0, latency))

    def failed(self, target: str, kind: str) -> None:
        self._op_child(target, kind, "failed").inc()

    def _op_child(self, target: str, kind: str, outcome: str):
        """The operations counter's child for these labels. Two threads missing the cache
        at once both call labels(), which hands both the same child: no count is lost."""
        key = (target, kind, outcome)
        child = self._op_children.get(key)
        if child is None:
            child = self._op_children[key] = self._ops.labels(target, kind, outcome)
        return child

    def set_trash(self, target: str, *, files: int, bytes_: int, oldest: float | None,
                  purged: int = 0) -> None:
        """The target's trash after a retention run (mirrord.trash.retention.Summary):
        files and bytes kept, the oldest kept change (seconds; None: empty), files purged."""
        self._trash_files.labels(target).set(files)
        self._trash_bytes.labels(target).set(bytes_)
        self._trash_oldest.labels(target).set(oldest or 0.0)
        self._trash_purged.labels(target).inc(purged)

    # ------------------------------------------------------------------- watcher

    def overflow(self) -> None:
        self._overflows.inc()

    def cycle_error(self, step: str) -> None:
        self._cycle_errors.labels(step).inc()

    def watch_error(self) -> None:
        self._watch_errors.inc()

    def set_watched_dirs(self, n: int) -> None:
        self._watched.set(n)

    def set_unwatched_dirs(self, source: str, n: int) -> None:
        self._unwatched.labels(source).set(n)

    def set_alarm(self, source: str, *, active: bool, count: int, held: bool) -> None:
        """The source's mass-change alarm (mirrord.daemon_alarm): firing, changes counted in
        the window, deletes held."""
        self._alarm.labels(source).set(1 if active else 0)
        self._alarm_count.labels(source).set(count)
        self._held.labels(source).set(1 if held else 0)

    def alarm_fired(self, source: str) -> None:
        self._alarms.labels(source).inc()

    # ----------------------------------------------------------- reconcile, heartbeat

    def reconcile_done(self, target: str, finished_at: float, duration: float,
                       counts: Mapping[str, int]) -> None:
        """Record one finished pass; results missing from `counts` that an earlier pass had drop to 0."""
        self._rec_last.labels(target).set(finished_at)
        self._rec_duration.labels(target).set(duration)
        files = {k: v for k, v in counts.items() if k != RECONCILE_BYTES_KEY}
        self._rec_bytes.labels(target).set(counts.get(RECONCILE_BYTES_KEY, 0))
        with self._lock:
            seen = self._reconcile_results.setdefault(target, set())
            for result in seen - files.keys():
                self._rec_files.labels(target, result).set(0)
            seen.update(files)
        for result, value in files.items():
            self._rec_files.labels(target, result).set(value)

    def heartbeat_written(self, target: str, at: float) -> None:
        self._heartbeat.written(target, at)

    # ------------------------------------------------------- target states, liveness

    def set_target_states(self, states: Mapping[str, TargetState]) -> None:
        """Publish each target's state and lag (TargetStates.update()) to the gauges and /ready."""
        for target, st in states.items():
            for name in STATES:
                self._state.labels(target, name).set(1 if name == st.state else 0)
            self._lag.labels(target).set(max(0.0, st.lag_seconds))
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

    # ---------------------------------------------------------------- exposition

    def render(self) -> bytes:
        """The text exposition format, as a scrape would see it."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP endpoint (/metrics, /live, /ready) on a daemon thread; returns the
        bound address (port 0 picks one). OSError when the address cannot be bound."""
        if self._server is not None:
            raise RuntimeError("metrics endpoint already started")
        server_cls = ThreadingHTTPServer
        if ":" in host:   # an IPv6 literal: http.server binds AF_INET unless told
            server_cls = type("ThreadingHTTPServer6", (ThreadingHTTPServer,),
                              {"address_family": socket.AF_INET6})
        server = server_cls((host, port), _handler(self))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
        self._server = server
        bound = server.server_address
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        """Stop the HTTP endpoint, if started."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def _handler(metrics: Metrics) -> type:
    """A request handler for `metrics`: mirrord health's Handler (its GET/HEAD/OPTIONS, headers
    and JSON bodies), answering the primary's paths. Imported here, not at the top, so a
    daemon without metrics_listen never loads the mirror host's modules."""
    from mirrord.health.service import Handler

    class PrimaryHandler(Handler):
        server_version = "mirrord"

        def _answer(self, *, body: bool) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/metrics" and self.command == "GET":
                # the format the scraper's Accept asks for (text 0.0.4 by default, or OpenMetrics)
                encode, ctype = choose_encoder(self.headers.get("Accept", ""))
                return self._send(200, encode(metrics.registry), ctype, body)
            if path == "/live":
                ok, text = metrics.live()
                return self._send(200 if ok else 503, text.encode(), "text/plain; charset=utf-8", body)
            if path == "/ready":
                ok, doc = metrics.ready()
                return self._json(200 if ok else 503, doc, body)
            return self._send(404, b"not found: /metrics, /live, /ready\n", "text/plain", body)

    return PrimaryHandler
