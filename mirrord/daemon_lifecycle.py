"""A daemon's parts put together once its sources are watched, and taken apart at stop.

`setup` runs before the main loop (mirrord.daemon): the targets are created and
opened (each on its own thread, mirrord.daemon_start), the journal and the target
states are opened, the scanner's catch-up walks start, then the shipper and the
Pipeline are built and the watchers' start-up events handled. `shutdown` runs
after it: what the watchers and the scan queue still hold is recorded, in-flight
work gets STOP_GRACE to finish, claims are released and everything is closed.
Both run on the main thread; the journal is never touched from another one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future
from typing import TYPE_CHECKING

from mirrord import claimer, daemon_mounts, daemon_roots, interrupted, locations, notify
from mirrord import watched_through
from mirrord import daemon_start as start
from mirrord.interrupted import Interrupted
from mirrord.journal import Journal
from mirrord.logsetup import kv
from mirrord.pipeline import Pipeline
from mirrord.shipper import Shipper, SourceGuard
from mirrord.target_state import TargetStates, ever_in_sync_from
from mirrord.trash import keeper

if TYPE_CHECKING:
    from mirrord.daemon import Daemon

log = logging.getLogger("mirrord.daemon")

STOP_GRACE = 30.0               # seconds to let in-flight work finish on SIGTERM
ADOPT_EVERY = 5.0               # seconds between looks for rows a gone process left in flight


def setup(d: Daemon) -> None:
    """Bring `d` from watched sources (d.watching, or watched now) to a running
    Pipeline. Raises FatalError from start.watch_sources, ConfigError when a target
    cannot keep deleted files (mirrord.trash.keeper), JournalError when the state
    database is damaged or newer, and what a target's open raises other than
    MirrordError (an unreachable target is only logged and retried later); an
    error before the opens are awaited closes the watchers first."""
    watching, d.watching = d.watching or start.watch_sources(d.cfg), None
    d.lock = watching.lock
    d.watchers.update(watching.watchers)
    d.source_fs.update(watching.source_fs)
    start_events = watching.events
    if d.metrics is not None:
        d.metrics.set_watched_dirs(sum(w.watched for w in d.watchers.values()))
    opening: dict[str, Future[None]] = {}
    try:
        d.targets.update(start.create_targets(d.cfg))
        d.keep = keeper.policies(d.cfg, d.targets)   # ConfigError: cannot keep
        opening = start.start_opening(d.targets)
        routes = {s.name: s.targets for s in d.cfg.sources}
        # claims kept: the rows the last run left in flight are read first (undo_interrupted)
        d.journal = Journal(d.cfg.mirrord.journal_path, routes, reset_claims=False)
        d.alarms.restore_window()   # before anything counts: the window spans a restart
        # each source's bound for the catch-ups' ctime comparison (before the first is queued)
        d.watched = watched_through.WatchedThrough(d.journal.get_state(watched_through.STATE_KEY))
        # before the catch-up reads what was shipped, and while the rows left in flight are
        # still claimed: a place left marks what they may have done there (locations.py)
        locations.check(d.journal, d.cfg)
        held = d.journal.claimers()   # one look at the rows in flight serves both below
        undo_interrupted(d, at_start=True, claimers=held)
        others_in_flight(d, held)
        daemon_mounts.setup(d)   # before the catch-up: its deletes below a lost mount wait
        # the targets sources route to: one no source lists is never opened, and calling it
        # in_sync on /ready and in mirrord_target_state told other tools it mirrors something
        d.target_states = TargetStates(routes, ever_in_sync=(
            ever_in_sync_from(d.journal.get_state("daemon"))))
        if d.metrics is not None:
            d.metrics.set_live_window(d.cfg.mirrord.heartbeat_interval)
    except BaseException:
        futures.wait(opening.values())
        for watcher in d.watchers.values():
            watcher.close()
        raise
    # The catch-up walk only proposes changes: it runs while the targets connect
    # (an SSH handshake, an S3 client), and its proposals wait in the scan queue.
    for name in watching.missing:   # compared once its root is back (daemon_roots)
        d.roots.lose(d, d.cfg.source(name), "the source root was not a directory at start")
    daemon_roots.hold_empty(d, "at start")
    d.roots.note_start_fs(d)   # a root on another file system: its start deletes held
    d.scanner.start()
    for src in d.cfg.sources:
        if src.name not in d.roots.lost:
            d.schedule_catch_up(src, reason="start")
    start.finish_opening(opening, d.targets)
    start.expect_mirrors(d.journal, d.cfg, d.targets)   # a mount missing at boot: no writes
    guards = {s.name: SourceGuard(str(s.path), missing_ok=True) for s in d.cfg.sources}
    workers = {name: d.cfg.targets[name].workers for name in d.targets}
    for name in d.roots.lost:   # no delete of a lost root's paths, whatever stands there
        guards[name].lost = True
    d.roots.await_start(d, guards)   # ... nor of the others' before their start comparison
    d.shipper = Shipper(d.targets, d.cfg.sources, workers, wake=d.wake,
                        guards=guards, on_outcome=d.reporter.observe,
                        keep=d.keep, held=d.alarms.holds, mounts=d.mounts,
                        looks=d.journal.first_copies)
    d.periodic_hooks.append(ClaimWatch())
    d.periodic_hooks.append(d.roots)   # a lost source root watched again once back
    d.periodic_hooks.append(d.link_walks)   # names of new hard links, by a walk (rate-limited)
    d.scan_hooks.append(d.roots.compared)   # ... and its deletes let go once compared
    if d.keep:   # trash retention: at start, then every retention.INTERVAL
        d.periodic_hooks.append(d.scans.retention)
    d.pipeline = Pipeline(d.journal, d.shipper, idle=d._wait,
                          on_rescan=d.scans.rescan, on_check=d.scans.check_moved,
                          on_lost=d.scans.journal_lost,
                          on_journal_error=d._count_journal_error)
    for src in d.cfg.sources:
        d._handle_events(src, start_events[src.name])


def undo_interrupted(d: Daemon, *, why: str = "ops cut short by the last stop run again",
                     at_start: bool = False, claimers: set[str | None] | None = None) -> int:
    """Queue the removals of what the ops a gone process left in flight (the last run, a
    `mirrord reconcile` killed) may have made on their targets and the source no longer
    has (mirrord.interrupted), and release those rows' claims so they run again, in one
    transaction: a crash in between loses neither. The rows of a process still running
    (a reconcile that started before the daemon: mirrord.claimer) are left to it.
    `at_start`: the daemon has claimed nothing yet, so rows under its own claimer id are a
    previous life's: a daemon started at boot often gets the same pid and start time (clock
    ticks since boot) as the one that ran before a power loss, and its rows stayed in
    flight, never shipped, until the next restart. `claimers`: Journal.claimers() when
    the caller has read it already (None: read here). Returns how many rows were released.
    Raises what the journal raises (sqlite3.Error)."""
    held = d.journal.claimers() if claimers is None else claimers
    gone = {c for c in held if not claimer.alive(c)}
    if at_start and d.journal.claimer in held:
        gone.add(d.journal.claimer)
    rows = [Interrupted(*row) for row in d.journal.claimed_rows(gone)] if gone else []
    if not rows:
        return 0
    removals = interrupted.removals(rows, d.cfg.sources)
    # counted by the mass-change alarm first: its hold (pause_on_alarm) must be in the
    # journal before these are, or they go out unheld while the catch-up still walks
    d.alarms.observe_start(removals)
    with d.journal.transaction():
        d.journal.enqueue(removals)
        d.journal.release_claims(claimers=gone)
    log.info(kv(msg=why, ops=len(rows), parents_removed=len(removals)))
    return len(rows)


class ClaimWatch:
    """A periodic hook (Daemon.periodic_hooks): the rows another live process holds in
    flight at the daemon's start (a `mirrord reconcile` that began while the daemon was
    down) are its own while it runs; once it is gone without finishing them (killed),
    they are undone like a crash's (undo_interrupted), not left claimed until the next
    start. Looks every ADOPT_EVERY seconds, one index range per target."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock, self.next = clock, 0.0

    def __call__(self, d: Daemon) -> None:
        now = self.clock()
        if now < self.next:
            return
        self.next = now + ADOPT_EVERY
        for name in d.targets:
            if any(not claimer.alive(c) for c in d.journal.claimers(name)):
                undo_interrupted(d, why="ops a process that is gone left in flight run again")
                return


def others_in_flight(d: Daemon, held: set[str | None]) -> None:
    """Log the live processes (pids) whose rows in flight (claimers `held`, as
    Journal.claimers() read them) the daemon leaves to them."""
    others = {c for c in held if c != d.journal.claimer and claimer.alive(c)}
    if others:
        log.info(kv(msg="rows in flight of another running mirrord process are left to it",
                    pids=",".join(sorted(c.split(":")[0] for c in others if c))))


def shutdown(d: Daemon) -> None:
    """Finish or persist `d`'s in-flight work, then release everything: up to
    STOP_GRACE seconds for running ops, then the journal, watchers, targets and the daemon
    lock closed. The claims of ops still running then stay in the journal: cut short by
    the exit like a crash's, they are undone and run again at the next start
    (undo_interrupted). Raises nothing a target's close raises (logged at debug)."""
    notify.notify("STOPPING=1")
    d.stop_requested.set()
    if d.pipeline is not None:
        for name, watcher in d.watchers.items():
            d._handle_events(d.cfg.source(name), watcher.read(0) + watcher.settle())
        d._take_proposals()
        d.pipeline.drain(STOP_GRACE)
    if d.journal is not None:
        d.alarms.save_window()   # the next start counts on (mirrord.alarm_window)
        if d.pipeline is not None:   # the final read: the next start's ctime bound
            d._guarded("watched through", d.watched.advance, d)
    if d.shipper is not None:
        d.shipper.shutdown(wait=False)
    if d.journal is not None:
        d.journal.close()
    for watcher in d.watchers.values():
        watcher.close()
    if d.mount_table is not None:
        d.mount_table.close()
    for target in d.targets.values():
        try:
            target.close()
        except Exception:   # closing is best effort: logged, the stop goes on
            log.debug("closing target failed", exc_info=True)
    if d.lock is not None:
        d.lock.close()
    log.info(kv(msg="stopped"))
