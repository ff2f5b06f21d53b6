"""The metric families the daemon exports: each name, type, help text, labels and buckets.

`Families(registry)` creates them all on the registry it is given (mirrord.metrics.Metrics
owns one per daemon); `HeartbeatAge` is the one computed when scraped. Nothing here
counts: the Metrics methods set and increment these families.

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
- `mirrord_watcher_unread_seconds{source}` (gauge): seconds the source's watcher
  has read without finding the kernel's event queue empty (0 when its latest read
  did; mirrord.watch.read_lag): over 5 s its targets are catching up.
- `mirrord_cycle_errors_total{step}` (counter): errors in a step of the main
  loop; the daemon logs them and carries on. Each step's series is there at 0 from
  the start (Metrics.add_cycle_steps).
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
  kept change (absent when the trash is empty); `mirrord_trash_purged_total{target}`
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
- `mirrord_mass_change_alarms_total{source}` (counter): times the alarm fired;
  0 for every source from the start (Metrics.add_source).
- `mirrord_deletes_held{source}` (gauge): 1 while the source's deletes are held
  (`pause_on_alarm = yes`), until `mirrord resume-deletes`.

Alert rules and a Grafana dashboard built on these: deploy/prometheus/ and
deploy/grafana/ (e.g. `mirrord_target_state{state="in_sync"} == 0` for 5m).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

KINDS = ("put", "meta", "delete", "move", "mkdir")
OUTCOMES = ("shipped", "failed")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class HeartbeatAge(Collector):
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


class Families:
    """Every family above except the heartbeat age, registered on `r` (a CollectorRegistry);
    ValueError (from prometheus_client) when `r` already holds one of the names."""

    def __init__(self, r: CollectorRegistry):
        t = ["target"]
        self.pending_ops = Gauge("mirrord_pending_operations",
                                 "Changes in the journal not yet shipped to the target", t, registry=r)
        self.pending_bytes = Gauge("mirrord_pending_bytes",
                                   "Bytes of file content waiting to be shipped to the target", t, registry=r)
        self.oldest = Gauge("mirrord_oldest_pending_seconds",
                            "Age of the oldest change not yet shipped to the target (0 when none)",
                            t, registry=r)
        self.ops = Counter("mirrord_operations",
                           "Changes applied to a target, by kind and outcome (shipped or failed)",
                           ["target", "kind", "outcome"], registry=r)
        self.latency = Histogram("mirrord_replication_latency_seconds",
                                 "Seconds from a file's close to its arrival on the target",
                                 t, buckets=LATENCY_BUCKETS, registry=r)
        self.overflows = Counter("mirrord_inotify_overflows",
                                 "inotify event-queue overflows (each one triggers a rescan)", registry=r)
        self.cycle_errors = Counter("mirrord_cycle_errors",
                                    "Errors in a step of the daemon's main loop (survived: the "
                                    "loop goes on)", ["step"], registry=r)
        self.watch_errors = Counter("mirrord_watch_errors",
                                    "inotify watches that could not be added", registry=r)
        self.watched = Gauge("mirrord_watched_directories",
                             "Directories under an inotify watch", registry=r)
        self.unwatched = Gauge("mirrord_unwatched_directories",
                               "Directories of the source that could not be watched (retried, "
                               "and rescanned every few seconds until they are); the source is "
                               "degraded while this is above 0", ["source"], registry=r)
        self.unread = Gauge("mirrord_watcher_unread_seconds",
                            "Seconds the source's watcher has read without finding the "
                            "kernel's event queue empty (0: its latest read did)", ["source"],
                            registry=r)
        self.rec_last = Gauge("mirrord_reconcile_last_run_timestamp_seconds",
                              "Unix time the last reconcile pass for the target finished", t, registry=r)
        self.rec_duration = Gauge("mirrord_reconcile_duration_seconds",
                                  "Duration of the last reconcile pass for the target", t, registry=r)
        self.rec_files = Gauge("mirrord_reconcile_files",
                               "Files the last reconcile pass found, by result",
                               ["target", "result"], registry=r)
        self.rec_bytes = Gauge("mirrord_reconcile_bytes",
                               "Bytes the last reconcile pass queued for upload", t, registry=r)
        self.state = Gauge("mirrord_target_state",
                           "1 for the target's current state (initial_sync, catching_up, in_sync, "
                           "degraded, stalled), 0 for the others", ["target", "state"], registry=r)
        self.lag = Gauge("mirrord_replication_lag_seconds",
                         "Age of the oldest change not yet on the target (0 when idle)", t, registry=r)
        self.trash_files = Gauge("mirrord_trash_files",
                                 "Files kept in the target's trash (keep_deleted)", t, registry=r)
        self.trash_bytes = Gauge("mirrord_trash_bytes",
                                 "Bytes kept in the target's trash (keep_deleted)", t, registry=r)
        self.trash_oldest = Gauge("mirrord_trash_oldest_timestamp_seconds",
                                  "Unix time of the oldest change kept in the target's trash "
                                  "(0 when empty)", t, registry=r)
        self.trash_purged = Counter("mirrord_trash_purged",
                                    "Kept files purged from the target's trash by retention",
                                    t, registry=r)
        src = ["source"]
        self.alarm = Gauge("mirrord_mass_change_alarm",
                           "1 while more than alarm_deletes deletes or overwrites happened on the "
                           "source within alarm_window", src, registry=r)
        self.alarm_count = Gauge("mirrord_mass_changes_in_window",
                                 "Deletes and overwrites on the source within alarm_window", src,
                                 registry=r)
        self.alarms = Counter("mirrord_mass_change_alarms",
                              "Times the source's mass-change alarm fired", src, registry=r)
        self.held = Gauge("mirrord_deletes_held",
                          "1 while the source's deletes are held after an alarm (until "
                          "mirrord resume-deletes)", src, registry=r)
