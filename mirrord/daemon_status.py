"""What the daemon reports: per-source health, heartbeats on the targets, the `daemon`
state row `mirrord status` reads, and the metrics (gauges, and per-outcome counters).

A heartbeat is written on its target's side thread (Shipper.submit_task: beside the
workers, never behind their batches); at most one per target is in flight, so a hung
target does not pile them up. Failover reads them (mirrord.heartbeat).
"""

from __future__ import annotations

import logging
import os
import queue
import time
from typing import Callable

from mirrord import notify
from mirrord.errors import MirrordError
from mirrord.fsutil import remote_writes_unseen
from mirrord.heartbeat import NAME as HEARTBEAT_NAME, Heartbeat
from mirrord.journal import Outcome
from mirrord.logsetup import kv
from mirrord.mirror_wiped import WipeWatch
from mirrord.targets.base import Target

log = logging.getLogger("mirrord.daemon")


def source_health(watchers: dict, source_fs: dict[str, str | None],
                  mounts: dict | None = None,
                  roots_lost: dict[str, str] | None = None,
                  held: Callable[[str], bool] | None = None,
                  mount_points: dict[str, str | None] | None = None) -> dict[str, dict]:
    """Per source: whether every directory is watched, whether the file system raises
    events for every writer, the file systems mounted below the root that are gone
    (`lost_mounts`, relative paths; mounts: source -> mirrord.submounts.SubMounts), and
    why its root is lost (`root_lost`, None when not; roots_lost: mirrord.daemon_roots),
    and whether its deletes are held (`deletes_held`; held(source): AlarmWatch.holds), and
    for how many seconds its watcher has read without finding the kernel's event queue
    empty (`events_unread_for`, float, 0.0 when its latest read did: mirrord.watch.read_lag).
    `lost` while the root is, else `degraded` while any directory is unwatched or any
    such mount is lost."""
    out: dict[str, dict] = {}
    for name, watcher in watchers.items():
        unwatched = watcher.unwatched
        fstype = source_fs.get(name)
        sub = (mounts or {}).get(name)
        lost = sub.lost() if sub is not None else []
        root = (roots_lost or {}).get(name)
        out[name] = {"state": "lost" if root else "degraded" if unwatched or lost else "ok",
                     "root_lost": root, "lost_mounts": lost,
                     "deletes_held": bool(held and held(name)),
                     "events_unread_for": round(watcher.read_lag.seconds(), 3),
                     "watched_directories": watcher.watched,
                     "unwatched_directories": unwatched,
                     "unwatched_paths": watcher.unwatched_paths(20) if unwatched else [],
                     "fstype": fstype, "remote_writes_unseen": remote_writes_unseen(fstype),
                     "mount_point": (mount_points or {}).get(name)}
    return out


def trash_fields(summary) -> dict:
    """Heartbeat fields for a target's trash from its last retention run
    (mirrord.trash.retention.Summary; None: it keeps nothing, or no run yet)."""
    if summary is None:
        return {}
    return {"trash_files": summary.files, "trash_bytes": summary.bytes,
            "trash_oldest": summary.oldest}


class Reporter:
    """Writes heartbeats and the daemon's state row; `daemon` is read, never changed."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.in_flight: set[str] = set()
        # Targets whose last heartbeat was not written. Every target counts as down until
        # its first heartbeat of this run is: rows failed before a restart get their retry
        # at once too, when the target is reachable.
        self.down: set[str] | None = None
        self.back: queue.SimpleQueue[str] = queue.SimpleQueue()   # written by workers
        # target -> why its latest heartbeat write failed (workers write, the main loop
        # reads a copy): the target is `degraded` while it cannot be written, even with
        # nothing pending (target_state rule 2)
        self.unwritable: dict[str, str] = {}
        self.wipes = WipeWatch(HEARTBEAT_NAME)   # a heartbeat of this run gone: not written
        self.last_watchdog = 0.0

    def watchdog(self) -> None:
        """Tell systemd the loop turns (WatchdogSec, sd_notify(3)): sent every cycle that
        reaches this step, whatever the other steps did; the loop-turned metric too."""
        now = time.monotonic()
        if self.daemon.metrics is not None:
            self.daemon.metrics.loop_turned(now)
        interval = notify.watchdog_interval()
        if interval and now - self.last_watchdog >= interval / 2:
            self.last_watchdog = now
            notify.notify("WATCHDOG=1")

    def beat(self) -> None:
        d = self.daemon
        cfg, metrics = d.cfg, d.metrics
        if self.down is None:
            self.down = set(d.targets)
        self._retry_targets_back()
        self.wipes.beat(d)
        backlog = d.journal.backlog()
        now = time.time()
        sources = d.source_health()
        held = d.pipeline.held() if d.pipeline is not None else 0   # not in the backlog
        # a walk for hard links' other names, wanted and not run yet (LinkWalks waits up to
        # LINK_WALK_EVERY s): a write through one name has not reached the others on the
        # targets, and status said in_sync meanwhile (a review, helper-136)
        states = d.target_states.update(backlog, now=now, sources=sources,
                                        scanning=d.catchups_pending, linking=d.link_walks.wanted,
                                        unwritable=dict(self.unwritable), journal_held=held)
        if metrics is not None:
            metrics.set_target_states(states)
        for name, target in d.targets.items():
            b = backlog.get(name)
            pending = (b.pending if b else 0) + held   # held: for some source, maybe this one
            oldest = (now - b.oldest) if (b and b.oldest) else 0.0
            unwatched = sum(h["unwatched_directories"] for s, h in sources.items()
                            if name in cfg.source(s).targets)
            lost = any(h.get("lost_mounts") or h.get("root_lost") for s, h in sources.items()
                       if name in cfg.source(s).targets)
            doc = Heartbeat.now(host=cfg.mirrord.hostname, target=name, clock=lambda: now,
                                pending=pending, oldest_pending_age=oldest,
                                interval=cfg.mirrord.heartbeat_interval,
                                degraded=unwatched > 0 or lost, unwatched_directories=unwatched,
                                state=states[name].state, reason=states[name].reason,
                                **trash_fields(d.trash.get(name)))
            if name not in self.in_flight:
                self.in_flight.add(name)
                d.shipper.submit_task(name, self._writer(target, doc))
            if metrics is not None:
                metrics.set_pending(name, pending, b.pending_bytes if b else 0, oldest)
        c = d.counters
        d.set_state("daemon", {
            "pid": os.getpid(), "host": cfg.mirrord.hostname, "updated": now,
            "started": c.started_at, "overflows": c.overflows, "watch_errors": c.watch_errors,
            "root_lost": c.root_lost, "journal_errors": c.journal_errors,
            "cycle_errors": c.cycle_errors,
            "watched_directories": sum(w.watched for w in d.watchers.values()),
            "unwatched_directories": sum(h["unwatched_directories"] for h in sources.values()),
            "sources": sources, "heartbeat_interval": cfg.mirrord.heartbeat_interval,
            "target_states": d.target_states.to_json(), "alarms": d.alarms.to_json()})
        d.alarms.save_window()   # the window spans a restart (mirrord.alarm_window)
        d.watched.advance(d, sources)   # the catch-ups' ctime bound (mirrord.watched_through)
        if metrics is not None:
            metrics.set_watched_dirs(sum(w.watched for w in d.watchers.values()))
            for name, h in sources.items():
                metrics.set_unwatched_dirs(name, h["unwatched_directories"])
                metrics.set_unread_seconds(name, h["events_unread_for"])

    def _retry_targets_back(self) -> None:
        """Main thread: each target whose heartbeat was written again after failing has its
        failed rows retried now (Journal.retry_now), not after each row's own backoff: a
        target that was down (S3 or sshd stopped, a local mirror unwritable) is exact as
        soon as it is back, whatever its errors were classed as while it was down."""
        while True:
            try:
                name = self.back.get_nowait()
            except queue.Empty:
                return
            try:
                n = self.daemon.journal.retry_now(name)
            except Exception:
                self.back.put(name)   # the journal cannot be written now: next heartbeat
                raise
            if n:
                log.info(kv(msg="target is back: retrying its failed changes now", target=name,
                            ops=n))

    def observe(self, out: Outcome) -> None:
        """Worker-thread hook (Shipper.on_outcome): metrics only (thread-safe), never the
        journal. A file still open for writing (busy) is a wait, not a failure."""
        metrics = self.daemon.metrics
        if metrics is None:
            return
        kind = out.shipped_kind or out.op.kind
        if kind == "skip" or out.busy:   # nothing differed / waiting for a writer
            return
        if out.error is None:
            metrics.shipped(out.op.target, kind, max(0.0, time.time() - out.op.event_time))
        else:
            metrics.failed(out.op.target, kind)

    def _writer(self, target: Target, doc: Heartbeat) -> Callable[[], None]:
        """A side task (Shipper.submit_task) writing one heartbeat document."""
        metrics = self.daemon.metrics

        def write() -> None:
            try:
                why = self.wipes.before_write(target)
                if why is not None:
                    self.unwritable[target.name] = why
                    return
                target.write_meta(HEARTBEAT_NAME, doc.to_json())
                self.wipes.after_write(target.name)
                self.unwritable.pop(target.name, None)
                if metrics is not None:
                    metrics.heartbeat_written(target.name, doc.unix)
                if target.name in self.down:   # reachable and writable again
                    self.down.discard(target.name)
                    self.back.put(target.name)
                    self.daemon.wake()
            except MirrordError as exc:
                self.down.add(target.name)
                self.unwritable[target.name] = str(exc)
                log.warning(kv(msg="heartbeat not written", target=target.name, error=str(exc)))
            finally:
                self.in_flight.discard(target.name)
        return write
