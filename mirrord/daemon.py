"""`mirrord run`: watcher -> journal -> shipper -> targets, in one boring main loop.

The main thread owns the journal, through the Pipeline (mirrord.pipeline). Each
cycle it waits (select) on the inotify descriptors and a wake-up pipe that
workers, scanners and signals write to, then: turns watcher events into
changes, records the scanner's proposals, records finished work, hands ready
ops to free workers, writes heartbeats, runs the scheduled hooks. Each step is
guarded on its own; only FATAL errors end the loop. Signal handlers only set a
flag. The jobs around the loop live beside it: start-up (mirrord.daemon_start),
the parts wired up before the loop and taken apart after it (mirrord.daemon_lifecycle),
watcher events (mirrord.daemon_events), scans and their results
(mirrord.daemon_scans, run on mirrord.scanner's thread), heartbeats, status and
metrics (mirrord.daemon_status), reconcile passes (mirrord.reconcile.schedule).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import select
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from mirrord import daemon_lifecycle as lifecycle
from mirrord import daemon_start as start
from mirrord import notify
from mirrord.hardlinks import LinkIndex
from mirrord.config import Config, SourceConfig
from mirrord.daemon_alarm import AlarmWatch
from mirrord.daemon_events import EventRouter, LinkWalks
from mirrord.daemon_roots import Roots
from mirrord.daemon_scans import ReconcileHost, Scans
from mirrord.daemon_status import Reporter, source_health
from mirrord.errors import FatalError, JournalError
from mirrord.journal import Change, Journal, Outcome
from mirrord.logsetup import hook_name, kv
from mirrord.pipeline import Pipeline
from mirrord.scanner import SCAN_QUEUE_CHUNKS, Proposal, Scanner
from mirrord.shipper import Shipper
from mirrord.target_state import TargetStates
from mirrord.targets.base import Target
from mirrord.trash import keeper
from mirrord.watch.events import FsEvent
from mirrord.watched_through import WatchedThrough
from mirrord.watch.select import Watcher

log = logging.getLogger("mirrord.daemon")

# Errors that end the daemon (exit non-zero: systemd restarts it) instead of being survived.
FATAL = (FatalError, JournalError, MemoryError)


@dataclass
class Counters:
    overflows: int = 0
    watch_errors: int = 0
    root_lost: int = 0
    journal_errors: int = 0
    cycle_errors: int = 0
    started_at: float = field(default_factory=time.time)


class Daemon:
    """One mirror daemon: owns the journal (via its Pipeline), the watchers, the shipper
    and the schedule hooks."""

    def __init__(self, cfg: Config, *, metrics=None, watching: start.Watching | None = None):
        if not cfg.sources:
            raise FatalError(f"{cfg.path}: no [source:NAME] section: nothing to watch")
        self.cfg = cfg
        self.metrics = metrics
        self.watching = watching   # sources already watched (start.watch_sources), or None
        self.counters = Counters()
        self.stop_requested = threading.Event()
        self.hup_seen = threading.Event()   # SIGHUP: logged by the loop, nothing reloaded
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.proposals: queue.Queue[Proposal] = queue.Queue(maxsize=SCAN_QUEUE_CHUNKS)
        self.watchers: dict[str, Watcher] = {}
        self.targets: dict[str, Target] = {}
        self.journal: Journal | None = None
        self.shipper: Shipper | None = None
        self.pipeline: Pipeline | None = None
        self.target_states: TargetStates | None = None
        self.scanner = Scanner(self.proposals, self.wake, self.stop_requested)
        self.reporter = Reporter(self)
        self.events = EventRouter(self)
        self.alarms = AlarmWatch(self)   # live mass-change alarm, held deletes (daemon_alarm.py)
        self.scans = Scans(self)
        self.roots = Roots()         # source roots lost, watched again once back
        self.next_heartbeat = 0.0
        self.lock = None
        self.catchups_pending: set[str] = set()
        self.subtree_checks_pending: set[tuple[str, str, tuple[str, ...] | None]] = set()
        self.source_fs: dict[str, str | None] = {}
        self.mounts: dict = {}       # source -> SubMounts (mirrord.daemon_mounts)
        # source -> the names of its hard-linked files (a write through one reaches all)
        self.links = LinkIndex({s.name: str(s.path) for s in cfg.sources})
        self.link_walks = LinkWalks()   # a periodic hook once running (daemon_lifecycle)
        self.mount_table = None      # submounts.MountTable, polled each turn
        self.mounts_rescan_at = 0.0  # monotonic time of the next check below fanotify's mounts
        self.keep: dict[str, keeper.KeepPolicy] = {}   # targets with keep_deleted on
        self.trash: dict = {}   # target -> its last retention Summary (mirrord.trash.retention)
        self.watched = WatchedThrough(None)   # read from the state database at setup
        # extension points (reconcile scheduling): called from the main thread only
        self.trouble_hooks: list[Callable[["Daemon", SourceConfig, str], None]] = []
        self.scan_hooks: list[Callable[["Daemon", str, object], None]] = []
        self.periodic_hooks: list[Callable[["Daemon"], None]] = []

    # ------------------------------------------------------------ wake-up
    def wake(self) -> None:
        try:
            os.write(self.wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the loop is already going to wake

    def request_stop(self, signum: int = 0, _frame=None) -> None:
        self.stop_requested.set()
        self.wake()

    # ------------------------------------------------------------ set-up
    def setup(self) -> None:
        """Targets, journal, shipper and Pipeline wired up (mirrord.daemon_lifecycle)."""
        lifecycle.setup(self)

    # ------------------------------------------------------------ scans
    def schedule_catch_up(self, src: SourceConfig, *, reason: str) -> None:
        """Queue a catch-up of `src` (at most one per source at a time)."""
        self.scans.catch_up(src, reason=reason)

    def schedule_subtree_check(self, src: SourceConfig, rel: str) -> None:
        """Compare one subtree with what was shipped (at most one per subtree queued)."""
        self.scans.subtree_check(src, rel)

    def schedule_subtree(self, src: SourceConfig, rel: str, targets: tuple[str, ...]) -> None:
        """Re-send a whole directory (a move that could not be kept as a move)."""
        self.scans.subtree(src, rel, targets)

    def reconcile_host(self) -> ReconcileHost:
        """The narrow view the reconcile schedule gets of this daemon."""
        return ReconcileHost(self)

    # ------------------------------------------------------------ events
    def _handle_events(self, src: SourceConfig, events: list[FsEvent]) -> None:
        self.events.handle(src, events)

    # ------------------------------------------------------------ journal
    def _record(self, changes: list[Change], ticket=None) -> None:
        self.pipeline.record(changes, ticket)

    def _ack(self, outcomes: list[Outcome]) -> None:
        self.pipeline.ack(outcomes)
        if self.keep and outcomes:   # the trash figures refreshed soon after a keep
            self.scans.trash_changed(outcomes)

    def _count_journal_error(self, _exc: Exception) -> None:
        self.counters.journal_errors += 1

    def set_state(self, key: str, value: object) -> None:
        """Write a status row; a journal error is counted, never worth stopping for."""
        try:
            self.journal.set_state(key, value)
        except Exception as exc:  # noqa: BLE001 - status only
            self.pipeline.journal_failed(exc)

    # ------------------------------------------------------------ cycle
    def run(self) -> int:
        self.setup()
        self._install_signals()
        if self.metrics is not None:   # each step's error series at 0 (Metrics.add_cycle_steps)
            self.metrics.add_cycle_steps(name for name, _ in self._cycle_steps)
        notify.notify("READY=1", "STATUS=watching")
        log.info(kv(msg="running", sources=len(self.cfg.sources), targets=len(self.targets),
                    pid=os.getpid()))
        try:
            while not self.stop_requested.is_set():
                self.run_cycle()
        finally:
            self.shutdown()
        return 0

    def run_cycle(self) -> None:
        """One turn of the loop. Each step is guarded on its own (Patroni's run_cycle is
        the model): an exception in one (a hook writing state on a full disk, a bug in
        a scan's result) is logged with the step's name, counted in status and metrics,
        and the other steps and later cycles go on. Only FATAL errors end the daemon,
        non-zero, so systemd restarts it."""
        for name, step in self._cycle_steps:
            try:
                step()
            except FATAL:
                raise
            except Exception as exc:  # noqa: BLE001 - survive any one step's error
                self._step_failed(name, exc)

    @property
    def _cycle_steps(self) -> list[tuple[str, Callable[[], None]]]:
        steps = [("wait", lambda: self._wait(self._timeout())),
                 ("read watchers", self._read_watchers),
                 ("record scans", self._take_proposals),
                 ("record changes", lambda: self._record([])),
                 ("record outcomes", lambda: self._ack(self.shipper.completed())),
                 ("alarms", lambda: self.alarms.tick()),
                 ("collect scans", self._collect_scans),
                 ("dispatch", self._dispatch),
                 ("heartbeat", self._maybe_heartbeat),
                 ("watchdog", self.reporter.watchdog),
                 ("SIGHUP", self._hup_said)]
        steps += [(f"hook {hook_name(h)}", functools.partial(h, self))
                  for h in self.periodic_hooks]
        return steps

    def _guarded(self, name: str, fn: Callable[..., object], *args: object) -> None:
        """Run one hook; its error is counted and logged like a failed cycle step."""
        try:
            fn(*args)
        except FATAL:
            raise
        except Exception as exc:  # noqa: BLE001 - survive any one hook's error
            self._step_failed(name, exc)

    def _step_failed(self, step: str, exc: Exception) -> None:
        self.counters.cycle_errors += 1
        n = self.counters.cycle_errors
        if self.metrics is not None:
            self.metrics.cycle_error(step)
        if n <= 10 or n % 100 == 0:   # a step failing every turn must not flood the log
            log.error(kv(msg="cycle step failed; carrying on", step=step, errors=n,
                         error=f"{type(exc).__name__}: {exc}"), exc_info=n <= 3)
        if step == "read watchers":   # events taken from the kernel may be lost: look again
            for src in self.cfg.sources:
                self.schedule_catch_up(src, reason="cycle-error")

    def _timeout(self) -> float:
        deadlines = [w.next_deadline() for w in self.watchers.values()]
        soonest = min((d for d in deadlines if d is not None), default=None)
        timeout = 0.5 if (self.pipeline.busy() or self.pipeline.tickets) else 1.0
        if soonest is not None:
            timeout = min(timeout, max(0.0, soonest - time.monotonic()))
        return timeout

    def _wait(self, timeout: float) -> None:
        fds = [self.wake_r] + [w.fileno() for w in self.watchers.values()]
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            return
        if self.wake_r in ready:
            try:
                while os.read(self.wake_r, 4096):
                    pass
            except BlockingIOError:
                pass

    def _read_watchers(self) -> None:
        for name, watcher in self.watchers.items():
            events = watcher.read(0)
            if events:
                self._handle_events(self.cfg.source(name), events)

    def _take_proposals(self) -> None:
        """Record every queued scan chunk (at most SCAN_QUEUE_CHUNKS x 500 changes) before
        the shipper claims: a first sync of 5,000 files taken 8 chunks at a time went out as
        2 x 2,000 files, then the last 1,057 alone while the other worker idled (1.1 s)."""
        for _ in range(SCAN_QUEUE_CHUNKS):
            try:
                chunk, ticket = self.proposals.get_nowait()
            except queue.Empty:
                return
            if ticket is None:   # a catch-up's deletes count for the alarm (daemon_alarm.py)
                self.alarms.observe_scan(chunk)
            self._record(chunk, ticket)

    def _collect_scans(self) -> None:
        self.scans.collect()

    def _dispatch(self) -> None:
        self.pipeline.dispatch()
        self.pipeline.poll_tickets()   # rows a reconcile pass on the scanner thread waits for

    def _maybe_heartbeat(self) -> None:
        now = time.monotonic()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.cfg.mirrord.heartbeat_interval
            self.reporter.beat()

    def source_health(self) -> dict[str, dict]:
        """Per source: watched / unwatched directories, file system (mirrord.daemon_status)."""
        return source_health(self.watchers, self.source_fs, self.mounts, self.roots.lost,
                             self.alarms.holds, self.roots.mount_points)

    # ------------------------------------------------------------ stop
    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        # SIGHUP's default action ended the daemon without a line, and systemd's
        # Restart=on-failure takes a SIGHUP death for a clean stop: an operator's habitual
        # `kill -HUP` to reload stopped mirroring for good (a breaker). Nothing is
        # reloaded; the loop says so (logging here could meet the logging lock held)
        signal.signal(signal.SIGHUP, lambda _s, _f: (self.hup_seen.set(), self.wake()))
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)

    def _hup_said(self) -> None:
        if self.hup_seen.is_set():
            self.hup_seen.clear()
            log.warning(kv(msg="SIGHUP: mirrord does not reload its configuration; it runs on "
                               "as started. Restart it to apply a changed config",
                           action="systemctl restart mirrord"))

    def shutdown(self) -> None:
        """Finish or persist in-flight work, then release everything (mirrord.daemon_lifecycle)."""
        lifecycle.shutdown(self)
