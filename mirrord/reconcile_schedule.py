"""Reconcile passes inside the daemon: on the `[reconcile] every` schedule, after a
restart, after an inotify overflow and after a watch-limit error.

Passes run in the daemon's scanner thread (one job at a time) and only propose
changes; the main thread writes them to the journal, where the shipper picks
them up like any live change. At most one pass is queued at a time: a burst of
overflows asks for one pass, not a hundred.

A pass that falls due while a catch-up is still running, or while the journal
holds more than BACKLOG_LIMIT operations, waits for them (up to MAX_WAIT). A
pass compares the source with the target as it is now; during a first sync or
after a big burst the target is missing exactly what the journal is about to
send, so the pass would queue the whole backlog a second time (measured: the
first sync to an ssh host sent most files twice). Waiting loses nothing: the
pass still runs, it just compares a target that has caught up.
"""

from __future__ import annotations

import logging
import time

import schedule

from mirrord.config import SourceConfig
from mirrord.logsetup import kv
from mirrord.reconcile import ReconcileResult, reconcile_target, target_state

log = logging.getLogger("mirrord.reconcile")

TROUBLE_DELAY = 5.0   # let a storm of events settle before the pass that repairs it
BACKLOG_LIMIT = 100   # queued operations above which a due pass waits (under a second of work)
MAX_WAIT = 3600.0     # a pass waits at most this long for the backlog (a target that never drains)
RECHECK = 1.0         # seconds between looks at the backlog while waiting


class ReconcileScheduler:
    """Decides when the daemon runs a pass, and records what each pass found."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.cfg = daemon.cfg
        self.scheduler = schedule.Scheduler()
        self.queued = False
        self.due_at: float | None = None
        self.due_reason = ""
        self.waiting_since: float | None = None
        self.next_look = 0.0
        every = self.cfg.reconcile.every
        if every > 0:
            self.scheduler.every(max(1, int(every))).seconds.do(self.request, "schedule")

    def request(self, reason: str, *, delay: float = 0.0) -> None:
        """Ask for one pass over every target (coalesced with one already asked for)."""
        when = time.monotonic() + delay
        if self.due_at is None or when < self.due_at:
            self.due_at, self.due_reason = when, reason

    # -- daemon hooks (main thread)
    def on_trouble(self, daemon, src: SourceConfig, reason: str) -> None:
        self.request(reason, delay=TROUBLE_DELAY)

    def on_periodic(self, daemon) -> None:
        self.scheduler.run_pending()
        now = time.monotonic()
        if self.due_at is None or self.queued or now < self.due_at or now < self.next_look:
            return
        busy = self._backlog_busy()
        if busy and (self.waiting_since is None or now - self.waiting_since < MAX_WAIT):
            if self.waiting_since is None:
                self.waiting_since = now
                log.info(kv(msg="reconcile pass waits for the backlog", reason=self.due_reason,
                            busy=busy))
            self.next_look = now + RECHECK
            return
        if busy:
            log.warning(kv(msg="reconcile pass runs although the backlog has not drained",
                           reason=self.due_reason, busy=busy, waited=round(now - self.waiting_since)))
        reason, self.due_at, self.waiting_since = self.due_reason, None, None
        self._queue(reason)

    def _backlog_busy(self) -> str:
        """Why a pass should not start yet ("" when it may): a catch-up still walking, or
        more queued operations than BACKLOG_LIMIT."""
        daemon = self.daemon
        if daemon.catchups_pending:
            return "catch-up running"
        try:
            if daemon.journal.has_more_ops_than(BACKLOG_LIMIT):
                return f"more than {BACKLOG_LIMIT} operations queued"
        except Exception:  # noqa: BLE001 - an unreadable journal is the daemon's problem, not ours
            return ""
        return ""

    def on_scan(self, daemon, name: str, result) -> None:
        if name != "reconcile":
            return
        self.queued = False
        if isinstance(result, Exception):
            return
        _kind, reason, per_target = result
        for target, results in per_target.items():
            self._record(target, reason, results)

    # -- the pass
    def _queue(self, reason: str) -> None:
        self.queued = True
        daemon = self.daemon
        targets = dict(daemon.targets)
        stop = daemon.stop_requested
        log.info(kv(msg="reconcile pass queued", reason=reason, targets=",".join(targets)))

        def job(emit):
            per_target: dict[str, list[ReconcileResult]] = {}
            for name, target in targets.items():
                if stop.is_set():
                    break
                per_target[name] = reconcile_target(self.cfg, target, emit=emit, stop=stop)
            return ("reconcile", reason, per_target)

        daemon.scanner.add("reconcile", job)

    def _record(self, target: str, reason: str, results: list[ReconcileResult]) -> None:
        doc = target_state(results)
        doc["reason"] = reason
        doc["finished_at"] = time.time()
        doc["counts"] = {k: doc[k] for k in ("compared", "missing", "changed", "extra", "deleted")}
        self.daemon.journal.set_state(f"reconcile:{target}", doc)
        level = logging.INFO if doc["in_sync"] else logging.WARNING
        log.log(level, kv(msg="reconcile pass done", target=target, reason=reason,
                          seconds=round(doc["duration"], 3), **doc["counts"],
                          refused_deletes=doc["refused_deletes"],
                          errors=len(doc["errors"]), delete_refusal=doc["delete_refusal"] or ""))
        metrics = self.daemon.metrics
        if metrics is not None:
            counts = dict(doc["counts"], errors=len(doc["errors"]), bytes=doc["bytes"])
            metrics.reconcile_done(target, doc["finished_at"], doc["duration"], counts)


def attach(daemon) -> ReconcileScheduler:
    """Wire reconcile scheduling into a Daemon; a pass follows every start."""
    sched = ReconcileScheduler(daemon)
    daemon.trouble_hooks.append(sched.on_trouble)
    daemon.periodic_hooks.append(sched.on_periodic)
    daemon.scan_hooks.append(sched.on_scan)
    sched.request("start")
    return sched
