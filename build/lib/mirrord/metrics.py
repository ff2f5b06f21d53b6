"""Prometheus metrics: what the daemon counts, and the HTTP endpoint that serves them.

Everything lives on a `CollectorRegistry` owned by one `Metrics` object, never
on prometheus_client's global registry, so tests and two daemons in one
process do not collide. The daemon calls the small methods below; it never
touches prometheus_client itself. Enabled by `metrics_listen = HOST:PORT` in
`[mirrord]`.

Metrics (all names carry the `mirrord_` prefix):

- `mirrord_pending_operations{target}` (gauge): changes in the journal not yet
  shipped to the target.
- `mirrord_pending_bytes{target}` (gauge): size in bytes of the files those
  pending changes will upload.
- `mirrord_oldest_pending_seconds{target}` (gauge): age of the oldest pending
  change; 0 when nothing is pending. The replication-lag alert watches this.
- `mirrord_operations_total{target,kind,outcome}` (counter): changes applied to
  a target; kind is put, delete, move or mkdir; outcome is shipped or failed
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
- `mirrord_reconcile_last_run_timestamp_seconds{target}` (gauge): Unix time at
  which the last reconcile pass for the target finished.
- `mirrord_reconcile_duration_seconds{target}` (gauge): how long that pass took.
- `mirrord_reconcile_files{target,result}` (gauge): what that pass found:
  result is compared, missing, changed, extra, deleted, errors (and any other
  count the pass reports); a result absent from a later pass drops to 0.
- `mirrord_reconcile_bytes{target}` (gauge): bytes that pass queued for upload.
- `mirrord_heartbeat_age_seconds{target}` (gauge): seconds since the daemon
  last wrote the target's heartbeat file, computed when scraped; absent until
  the first heartbeat.

A suggested alert on replication lag:

    - alert: MirrordReplicationLag
      expr: mirrord_oldest_pending_seconds > 300 or mirrord_heartbeat_age_seconds > 120
      for: 5m
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

KINDS = ("put", "delete", "move", "mkdir")
OUTCOMES = ("shipped", "failed")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RECONCILE_BYTES_KEY = "bytes"


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

    def __init__(self, *, clock: Callable[[], float] = time.time):
        self.registry = CollectorRegistry(auto_describe=True)
        self._server = None
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
        self._watch_errors = Counter("mirrord_watch_errors",
                                     "inotify watches that could not be added", registry=r)
        self._watched = Gauge("mirrord_watched_directories",
                              "Directories under an inotify watch", registry=r)
        self._rec_last = Gauge("mirrord_reconcile_last_run_timestamp_seconds",
                               "Unix time the last reconcile pass for the target finished", t, registry=r)
        self._rec_duration = Gauge("mirrord_reconcile_duration_seconds",
                                   "Duration of the last reconcile pass for the target", t, registry=r)
        self._rec_files = Gauge("mirrord_reconcile_files",
                                "Files the last reconcile pass found, by result",
                                ["target", "result"], registry=r)
        self._rec_bytes = Gauge("mirrord_reconcile_bytes",
                                "Bytes the last reconcile pass queued for upload", t, registry=r)

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
        self._ops.labels(target, kind, "shipped").inc()
        if latency is not None:
            self._latency.labels(target).observe(max(0.0, latency))

    def failed(self, target: str, kind: str) -> None:
        self._ops.labels(target, kind, "failed").inc()

    # ------------------------------------------------------------------- watcher

    def overflow(self) -> None:
        self._overflows.inc()

    def watch_error(self) -> None:
        self._watch_errors.inc()

    def set_watched_dirs(self, n: int) -> None:
        self._watched.set(n)

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

    # ---------------------------------------------------------------- exposition

    def render(self) -> bytes:
        """The text exposition format, as a scrape would see it."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP endpoint on a daemon thread; returns the bound address (port 0 picks one)."""
        if self._server is not None:
            raise RuntimeError("metrics endpoint already started")
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        bound = server.server_address
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        """Stop the HTTP endpoint, if started."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
