"""Reconcile passes inside the daemon: on the `[reconcile] every` schedule, after a
restart and after an inotify overflow. (A directory that cannot be watched needs no
pass: the watcher retries its watch and asks for a rescan of that subtree until the
watch holds.)

Passes run in the daemon's scanner thread (one job at a time) as a reconcile
Session (mirrord.reconcile.session): they only propose changes, which the main
thread records and ships like any live change, and send deletes only once the
pass's repairs succeeded. At most one pass is queued at a time: a burst of
overflows asks for one pass, not a hundred.

The scheduler sees the daemon only through `Host`: the backlog size, whether a
catch-up runs, a way to queue a scan, the targets, and where a summary goes.

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
import threading
import time
from typing import Callable, Protocol

import schedule

from mirrord.config import Config, SourceConfig
from mirrord.logsetup import kv
from mirrord.reconcile.result import PassSummary
from mirrord.reconcile.session import Outbox, Session
from mirrord.targets.base import Target
from mirrord.trash import retention

log = logging.getLogger("mirrord.reconcile")

TROUBLE_DELAY = 5.0   # let a storm of events settle before the pass that repairs it
BACKLOG_LIMIT = 100   # queued operations above which a due pass waits (under a second of work)
MAX_WAIT = 3600.0     # a pass waits at most this long for the backlog (a target that never drains)
RECHECK = 1.0         # seconds between looks at the backlog while waiting
REPAIR_WAIT = 600.0   # seconds a pass waits for its repairs before refusing its deletes


class Host(Protocol):
    """What the scheduler needs from the daemon, and nothing more."""

    targets: dict[str, Target]
    stop: threading.Event

    def backlog_over(self, limit: int) -> bool:
        """More than `limit` operations queued (not counting failed ones waiting out a backoff)."""

    def catching_up(self) -> bool:
        """A catch-up walk is queued or running."""

    def add_scan(self, name: str, job: Callable[[Outbox], object]) -> None:
        """Run job(outbox) on the scanner thread; its return value comes back to on_scan."""

    def record(self, summary: PassSummary) -> None:
        """Store (and count) a finished pass's summary, on the main thread."""

    def record_trash(self, target: str, summary: retention.Summary) -> None:
        """Store the retention run a pass ended with, as the daemon's own runs are stored
        (its `base`, the mirrored bytes, is the high-water mark of a percentage cap)."""

    def refused(self, targets: set[str]) -> None:
        """A pass refused deletes on `targets`: a source feeding one whose root is empty
        is held lost (mirrord.daemon_roots.hold_empty)."""


class ReconcileScheduler:
    """Decides when the daemon runs a pass, and records what each pass found."""

    def __init__(self, cfg: Config, host: Host, *, clock: Callable[[], float] = time.monotonic):
        self.cfg, self.host, self.clock = cfg, host, clock
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
        when = self.clock() + delay
        if self.due_at is None or when < self.due_at:
            self.due_at, self.due_reason = when, reason

    # -- daemon hooks (main thread)
    def on_trouble(self, daemon, src: SourceConfig, reason: str) -> None:
        if reason == "watch_error":
            return   # the watcher retries the watch and rescans that subtree until it holds
        self.request(reason, delay=TROUBLE_DELAY)

    def on_periodic(self, daemon) -> None:
        self.scheduler.run_pending()
        now = self.clock()
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
        if self.host.catching_up():
            return "catch-up running"
        try:
            if self.host.backlog_over(BACKLOG_LIMIT):
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
        for summary in result[2]:
            self.host.record(summary)
        refused = {s.target for s in result[2] if s.refused_deletes}
        if refused:
            self.host.refused(refused)
        for name, kept in result[3].items():
            self.host.record_trash(name, kept)

    # -- the pass
    def _queue(self, reason: str) -> None:
        self.queued = True
        targets = dict(self.host.targets)
        stop = self.host.stop
        log.info(kv(msg="reconcile pass queued", reason=reason, targets=",".join(targets)))

        def job(outbox: Outbox):
            session = Session(self.cfg, outbox=outbox, reason=reason, wait=REPAIR_WAIT, stop=stop)
            summaries: list[PassSummary] = []
            for target in targets.values():
                if stop.is_set():
                    break
                summaries.append(session.run_target(target))
            return ("reconcile", reason, summaries, dict(session.trash))

        self.host.add_scan("reconcile", job)


def attach(daemon) -> ReconcileScheduler:
    """Wire reconcile scheduling into a Daemon (its hooks, and `daemon.reconcile_host()`
    as the Host); a pass follows every start unless `[reconcile] at_start = no` (then the
    catch-up alone brings the targets up to the source: tests/e2e/test_stopped_changes.py
    checks that it does)."""
    sched = ReconcileScheduler(daemon.cfg, daemon.reconcile_host())
    daemon.trouble_hooks.append(sched.on_trouble)
    daemon.periodic_hooks.append(sched.on_periodic)
    daemon.scan_hooks.append(sched.on_scan)
    if daemon.cfg.reconcile.at_start:
        sched.request("start")
    return sched
