"""`mirrord run`: watcher -> journal -> shipper -> targets, in one boring main loop.

The main thread owns the journal. Each cycle it waits (select) on the inotify
descriptors and a wake-up pipe that workers, scanners and signals write to,
then: records new changes, records finished work, hands ready ops to free
workers, writes heartbeats, runs scheduled jobs. Signal handlers only set a
flag. Scanners (catch-up, subtree re-sends, reconcile) run in a background
thread and only *propose* changes through a bounded queue.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import resource
import select
import signal
import sqlite3
import threading
import time
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mirrord import notify, targets as target_registry
from mirrord.catchup import catch_up
from mirrord.config import Config, SourceConfig
from mirrord.errors import FatalError, MirrordError
from mirrord.journal import Change, Journal, Outcome
from mirrord.logsetup import kv, register_secret
from mirrord.shipper import Shipper, SourceGuard
from mirrord.targets.base import Target
from mirrord.treewalk import walk
from mirrord.watch.inotify import FsEvent, TreeWatcher

log = logging.getLogger("mirrord.daemon")

SCAN_QUEUE_CHUNKS = 20          # proposals held in memory at most: 20 x 500 changes
MAX_JOURNAL_BACKLOG = 200_000   # changes kept in memory while the journal cannot be written
STOP_GRACE = 30.0               # seconds to let in-flight work finish on SIGTERM


def lock_path(cfg: Config) -> Path:
    return cfg.mirrord.state_dir / "daemon.lock"


@dataclass
class Counters:
    overflows: int = 0
    watch_errors: int = 0
    root_lost: int = 0
    journal_errors: int = 0
    started_at: float = field(default_factory=time.time)


class Scanner(threading.Thread):
    """Runs scan jobs one at a time; each job proposes changes through `proposals`."""

    def __init__(self, proposals: "queue.Queue[list[Change]]", wake: Callable[[], None],
                 stop: threading.Event):
        super().__init__(name="scanner", daemon=True)
        self.jobs: queue.Queue[tuple[str, Callable[[Callable[[list[Change]], None]], object]]] = queue.Queue()
        self.proposals = proposals
        self.wake = wake
        self.stop = stop
        self.results: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self.busy = False

    def add(self, name: str, job: Callable[[Callable[[list[Change]], None]], object]) -> None:
        self.jobs.put((name, job))

    def emit(self, changes: list[Change]) -> None:
        while not self.stop.is_set():
            try:
                self.proposals.put(changes, timeout=0.5)
                self.wake()
                return
            except queue.Full:
                continue

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                name, job = self.jobs.get(timeout=0.5)
            except queue.Empty:
                continue
            self.busy = True
            try:
                self.results.put((name, job(self.emit)))
            except Exception as exc:  # noqa: BLE001 - a failed scan is logged, never fatal
                log.exception(kv(msg="scan failed", job=name))
                self.results.put((name, exc))
            finally:
                self.busy = False
                self.wake()

    def idle(self) -> bool:
        return not self.busy and self.jobs.empty() and self.proposals.empty()


class Daemon:
    """One mirror daemon: owns the journal, the watchers, the shipper and the schedule."""

    def __init__(self, cfg: Config, *, metrics=None):
        if not cfg.sources:
            raise FatalError(f"{cfg.path}: no [source:NAME] section: nothing to watch")
        self.cfg = cfg
        self.metrics = metrics
        self.counters = Counters()
        self.stop_requested = threading.Event()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.proposals: queue.Queue[list[Change]] = queue.Queue(maxsize=SCAN_QUEUE_CHUNKS)
        self.unwritten: list[Change] = []
        self.unacked: list[Outcome] = []   # outcomes held while the journal cannot be written
        self.watchers: dict[str, TreeWatcher] = {}
        self.targets: dict[str, Target] = {}
        self.journal: Journal | None = None
        self.shipper: Shipper | None = None
        self.scanner = Scanner(self.proposals, self.wake, self.stop_requested)
        self.next_heartbeat = 0.0
        self.heartbeats_in_flight: set[str] = set()
        self.next_state_save = 0.0
        self.last_watchdog = 0.0
        self.lock_fd: int | None = None
        self.catchups_pending: set[str] = set()
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
        self._take_lock()
        _raise_fd_limit()
        for t in self.cfg.targets.values():
            if t.s3 is not None:
                register_secret(t.s3.secret_access_key)
        self._check_sources()
        # Watches first: from this moment every change is queued by the kernel, so a
        # slow journal check or an unreachable target at start costs no missed events.
        start_events = self._start_watchers()
        opening: dict[str, Future[None]] = {}
        try:
            self._create_targets()
            opening = self._start_opening_targets()
            routes = {s.name: s.targets for s in self.cfg.sources}
            self.journal = Journal(self.cfg.mirrord.journal_path, routes)
        except BaseException:
            futures.wait(opening.values())
            for watcher in self.watchers.values():
                watcher.close()
            raise
        # The catch-up walk only proposes changes: it runs while the targets connect
        # (an SSH handshake, an S3 client), and its proposals wait in the scan queue.
        self.scanner.start()
        for src in self.cfg.sources:
            self.schedule_catch_up(src, reason="start")
        self._finish_opening_targets(opening)
        guards = {s.name: SourceGuard(str(s.path)) for s in self.cfg.sources}
        workers = {name: self.cfg.targets[name].workers for name in self.targets}
        self.shipper = Shipper(self.targets, self.cfg.sources, workers, wake=self.wake,
                               guards=guards, on_outcome=self._observe_outcome)
        for src in self.cfg.sources:
            self._handle_events(src, start_events[src.name])

    def _take_lock(self) -> None:
        self.cfg.mirrord.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path(self.cfg), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FatalError(f"another mirrord daemon is running on state_dir "
                             f"{self.cfg.mirrord.state_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.lock_fd = fd

    def _check_sources(self) -> None:
        for src in self.cfg.sources:
            if not src.path.is_dir():
                raise FatalError(f"source {src.name}: {src.path} is not a directory "
                                 f"([source:{src.name}] path); refusing to start")

    def _create_targets(self) -> None:
        used = dict.fromkeys(t for s in self.cfg.sources for t in s.targets)
        for name in used:
            self.targets[name] = target_registry.create(self.cfg.targets[name])

    def _start_opening_targets(self) -> dict[str, Future[None]]:
        """Open every target at once, each on its own thread, while the journal is checked
        and the catch-up walks. Shipping starts once every open has returned, so a host
        that drops packets costs its connect_timeout once, not once per target in turn;
        the watches are already in place, so no change is missed meanwhile."""
        pool = ThreadPoolExecutor(max_workers=max(1, len(self.targets)), thread_name_prefix="open")
        opening = {name: pool.submit(target.open) for name, target in self.targets.items()}
        pool.shutdown(wait=False)   # its threads end with their open
        return opening

    def _finish_opening_targets(self, opening: dict[str, Future[None]]) -> None:
        """Wait for the opens. An unreachable target is retried later; anything else (a
        bug, not a reachability error) stops the start."""
        for name, opened in opening.items():
            exc = opened.exception()
            if isinstance(exc, MirrordError):
                log.warning(kv(msg="target not reachable at start; will retry", target=name,
                               error=str(exc)))
            elif exc is not None:
                raise exc
            log.info(kv(msg="target", name=name, at=self.targets[name].describe()))

    def _start_watchers(self) -> dict[str, list[FsEvent]]:
        """Watch every source; returns each source's start-up events (watch errors),
        handled once the journal is open."""
        events: dict[str, list[FsEvent]] = {}
        for src in self.cfg.sources:
            watcher = TreeWatcher(str(src.path), src.excluded)
            events[src.name] = watcher.start()
            self.watchers[src.name] = watcher
            log.info(kv(msg="watching", source=src.name, path=str(src.path),
                        directories=watcher.watched, leaves_not_listed=watcher.leaves_skipped))
        if self.metrics is not None:
            self.metrics.set_watched_dirs(sum(w.watched for w in self.watchers.values()))
        return events

    # ------------------------------------------------------------ scans
    def schedule_catch_up(self, src: SourceConfig, *, reason: str) -> None:
        if src.name in self.catchups_pending:
            return
        self.catchups_pending.add(src.name)
        dirs = {t: self.targets[t].features.directories for t in src.targets if t in self.targets}
        db = self.cfg.mirrord.journal_path

        def job(emit):
            result = catch_up(db, src, list(src.targets), emit, stop=self.stop_requested,
                              directories=dirs)
            return ("catchup", src.name, reason, result)

        self.scanner.add(f"catchup:{src.name}", job)

    def schedule_subtree(self, src: SourceConfig, rel: str, targets: tuple[str, ...]) -> None:
        """Re-send a whole directory (a move that could not be kept as a move)."""

        def job(emit):
            batch: list[Change] = []
            root = os.path.join(str(src.path), rel)
            for entry in walk(root, prefix=rel, excluded=src.excluded):
                kind = "mkdir" if entry.is_dir else "put"
                batch.append(Change(src.name, entry.path, kind, size=entry.size,
                                    time=time.time(), targets=targets))
                if len(batch) >= 500:
                    emit(batch)
                    batch = []
            if batch:
                emit(batch)
            return ("subtree", src.name, rel, None)

        self.scanner.add(f"subtree:{src.name}:{rel}", job)

    # ------------------------------------------------------------ events
    def _handle_events(self, src: SourceConfig, events: list[FsEvent]) -> None:
        now = time.time()
        changes: list[Change] = []
        for ev in events:
            if ev.kind == "write":
                changes.append(Change(src.name, ev.path, "put", size=ev.size, time=now))
            elif ev.kind == "delete":
                changes.append(Change(src.name, ev.path, "delete", time=now))
            elif ev.kind == "mkdir":
                changes.append(Change(src.name, ev.path, "mkdir", time=now))
            elif ev.kind == "rmtree":
                changes.append(Change(src.name, ev.path, "delete", tree=True, time=now))
            elif ev.kind == "move":
                self._record(changes)
                changes = []
                self._move(src, ev, now)
            else:
                self._trouble(src, ev)
        self._record(changes)

    def _move(self, src: SourceConfig, ev: FsEvent, now: float) -> None:
        assert ev.src is not None and self.journal is not None
        try:
            fallback = self.journal.enqueue_move(src.name, ev.src, ev.path, is_dir=ev.is_dir, when=now)
        except Exception as exc:  # noqa: BLE001 - journal full or broken: keep as plain changes
            self._journal_failed(exc)
            self.unwritten.append(Change(src.name, ev.src, "delete", tree=ev.is_dir, time=now))
            self.unwritten.append(Change(src.name, ev.path, "mkdir" if ev.is_dir else "put", time=now))
            if ev.is_dir:
                self.schedule_subtree(src, ev.path, src.targets)
            return
        if fallback and ev.is_dir:
            self.schedule_subtree(src, ev.path, tuple(fallback))

    def _trouble(self, src: SourceConfig, ev: FsEvent) -> None:
        if ev.kind == "overflow":
            self.counters.overflows += 1
            if self.metrics is not None:
                self.metrics.overflow()
            log.warning(kv(msg="inotify overflow: events were lost; rescanning", source=src.name,
                           detail=ev.detail, overflows=self.counters.overflows))
            self._handle_events(src, self.watchers[src.name].rewatch())
            self.schedule_catch_up(src, reason="overflow")
            self._after_trouble(src, "overflow")
        elif ev.kind == "watch_error":
            self.counters.watch_errors += 1
            if self.metrics is not None:
                self.metrics.watch_error()
            log.error(kv(msg="cannot watch a directory: changes below it are caught only by "
                             "reconcile", source=src.name, path=ev.path, detail=ev.detail))
            self._after_trouble(src, "watch_error")
        elif ev.kind == "lost":
            self.counters.root_lost += 1
            log.error(kv(msg="source root lost; watching stops until it is back", source=src.name,
                         path=str(src.path), detail=ev.detail))

    def _after_trouble(self, src: SourceConfig, reason: str) -> None:
        for hook in self.trouble_hooks:
            hook(self, src, reason)

    # ------------------------------------------------------------ journal writes
    def _record(self, changes: list[Change]) -> None:
        if not changes and not self.unwritten:
            return
        assert self.journal is not None
        pending = self.unwritten + changes
        try:
            self.journal.enqueue(pending)
            self.unwritten = []
        except Exception as exc:  # noqa: BLE001 - disk full / I/O error: hold and retry
            self._journal_failed(exc)
            if len(pending) > MAX_JOURNAL_BACKLOG:
                log.error(kv(msg="journal unwritable too long: dropping held changes; a full "
                                 "rescan will follow once it is writable", held=len(pending)))
                self.unwritten = []
                for src in self.cfg.sources:
                    self.catchups_pending.discard(src.name)
                    self.schedule_catch_up(src, reason="journal-recovered")
            else:
                self.unwritten = pending

    def _journal_failed(self, exc: Exception) -> None:
        self.counters.journal_errors += 1
        if self.counters.journal_errors in (1, 10, 100) or self.counters.journal_errors % 1000 == 0:
            log.error(kv(msg="cannot write the journal; holding changes in memory and retrying",
                         error=str(exc), held=len(self.unwritten)))

    def _ack(self, outcomes: list[Outcome]) -> None:
        outcomes = self.unacked + outcomes
        if not outcomes:
            return
        assert self.journal is not None
        try:
            self.journal.ack(outcomes)
            self.unacked = []
        except sqlite3.OperationalError as exc:  # disk full, I/O error: hold and retry, else
            self._journal_failed(exc)            # the rows stay claimed (never dispatched
            self.unacked = outcomes              # again) until the next start
            return
        except Exception as exc:  # noqa: BLE001 - a bug: never block every later ack on it
            log.exception(kv(msg="cannot record finished work; redone after restart", ops=len(outcomes)))
            self._journal_failed(exc)
            self.unacked = []
            return
        failed: dict[tuple[str, int, str], list[str]] = {}
        for out in outcomes:
            if out.rescan:
                self.schedule_subtree(self.cfg.source(out.op.source), out.op.path, (out.op.target,))
            if out.error is not None and out.op.attempts in (0, 3, 10):
                failed.setdefault((out.op.target, out.op.attempts + 1, out.error), []).append(out.op.path)
        for (target, attempt, error), paths in failed.items():
            log_retrying(target, attempt, error, paths)

    def _observe_outcome(self, out: Outcome) -> None:
        """Worker-thread hook: metrics only (thread-safe), never the journal."""
        if self.metrics is None:
            return
        kind = out.shipped_kind or out.op.kind
        if out.error is None:
            self.metrics.shipped(out.op.target, kind, max(0.0, time.time() - out.op.event_time))
        else:
            self.metrics.failed(out.op.target, kind)

    # ------------------------------------------------------------ cycle
    def run(self) -> int:
        self.setup()
        self._install_signals()
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
        self._wait(self._timeout())
        self._read_watchers()
        self._take_proposals()
        self._record([])
        self._ack(self.shipper.completed())
        self._collect_scans()
        self._dispatch()
        self._periodic()

    def _timeout(self) -> float:
        deadlines = [w.next_deadline() for w in self.watchers.values()]
        soonest = min((d for d in deadlines if d is not None), default=None)
        timeout = 0.5 if (self.shipper.busy() or self.unwritten or self.unacked) else 1.0
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
                chunk = self.proposals.get_nowait()
            except queue.Empty:
                return
            self._record(chunk)

    def _collect_scans(self) -> None:
        while True:
            try:
                name, result = self.scanner.results.get_nowait()
            except queue.Empty:
                return
            if name.startswith("catchup:"):
                self.catchups_pending.discard(name.split(":", 1)[1])
            if isinstance(result, Exception):
                continue
            if isinstance(result, tuple) and result[0] == "catchup":
                _, source, reason, res = result
                log.info(kv(msg="catch-up done", source=source, reason=reason, files=res.files,
                            proposed=json.dumps(res.proposed), refused_deletes=res.refused_deletes,
                            unreadable=len(res.unreadable), seconds=round(res.seconds, 3)))
                self._set_state(f"catchup:{source}", {
                    "at": time.time(), "reason": reason, "files": res.files,
                    "proposed": res.proposed, "refused_deletes": res.refused_deletes,
                    "unreadable": res.unreadable[:20], "seconds": res.seconds})
            for hook in self.scan_hooks:
                hook(self, name, result)

    def _dispatch(self) -> None:
        for name in self.targets:
            try:
                self.shipper.take_work(self.journal, name)
            except Exception as exc:  # noqa: BLE001 - journal unwritable: dispatch next cycle
                self._journal_failed(exc)
                return

    def _periodic(self) -> None:
        now = time.monotonic()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.cfg.mirrord.heartbeat_interval
            self._heartbeat()
        interval = notify.watchdog_interval()
        if interval and now - self.last_watchdog >= interval / 2:
            self.last_watchdog = now
            notify.notify("WATCHDOG=1")
        for hook in self.periodic_hooks:
            hook(self)

    def _heartbeat(self) -> None:
        backlog = self.journal.backlog()
        now = time.time()
        for name, target in self.targets.items():
            b = backlog.get(name)
            pending = b.pending if b else 0
            oldest = (now - b.oldest) if (b and b.oldest) else 0.0
            doc = {"version": 1, "time": _iso(now), "unix": now,
                   "host": self.cfg.mirrord.hostname, "target": name, "pending": pending,
                   "oldest_pending_age": round(max(0.0, oldest), 3),
                   "interval": self.cfg.mirrord.heartbeat_interval}
            if name not in self.heartbeats_in_flight:
                self.heartbeats_in_flight.add(name)
                self.shipper.submit_task(name, self._heartbeat_writer(target, doc))
            if self.metrics is not None:
                self.metrics.set_pending(name, pending, b.pending_bytes if b else 0, oldest)
        self._set_state("daemon", {
            "pid": os.getpid(), "host": self.cfg.mirrord.hostname, "updated": now,
            "started": self.counters.started_at, "overflows": self.counters.overflows,
            "watch_errors": self.counters.watch_errors, "root_lost": self.counters.root_lost,
            "journal_errors": self.counters.journal_errors,
            "watched_directories": sum(w.watched for w in self.watchers.values()),
            "heartbeat_interval": self.cfg.mirrord.heartbeat_interval})

    def _set_state(self, key: str, value: object) -> None:
        try:
            self.journal.set_state(key, value)
        except Exception as exc:  # noqa: BLE001 - status only; never worth stopping for
            self._journal_failed(exc)

    def _heartbeat_writer(self, target: Target, doc: dict) -> Callable[[], None]:
        """A worker task; at most one per target is queued, so a hung target does not pile up."""
        def write() -> None:
            try:
                target.write_meta("heartbeat.json", json.dumps(doc).encode())
                if self.metrics is not None:
                    self.metrics.heartbeat_written(target.name, doc["unix"])
            except MirrordError as exc:
                log.warning(kv(msg="heartbeat not written", target=target.name, error=str(exc)))
            finally:
                self.heartbeats_in_flight.discard(target.name)
        return write

    # ------------------------------------------------------------ stop
    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)

    def shutdown(self) -> None:
        """Finish or persist in-flight work, then release everything."""
        notify.notify("STOPPING=1")
        self.stop_requested.set()
        for name, watcher in self.watchers.items():
            self._handle_events(self.cfg.source(name), watcher.read(0) + watcher.settle())
        self._take_proposals()
        if self.shipper is not None:
            deadline = time.monotonic() + STOP_GRACE
            while self.shipper.busy() and time.monotonic() < deadline:
                self._wait(0.2)
                self._ack(self.shipper.completed())
            self._ack(self.shipper.completed())
            self.shipper.shutdown(wait=False)
        if self.journal is not None:
            self._record([])
            try:
                self.journal.release_claims()
            except Exception as exc:  # noqa: BLE001 - claims are reset at the next start anyway
                self._journal_failed(exc)
            self.journal.close()
        for watcher in self.watchers.values():
            watcher.close()
        for target in self.targets.values():
            try:
                target.close()
            except Exception:  # noqa: BLE001
                log.debug("closing target failed", exc_info=True)
        log.info(kv(msg="stopped"))


def log_retrying(target: str, attempt: int, error: str, paths: list[str]) -> None:
    """One warning per distinct error, not per path: a failed batch of 5,000 files (the
    link dropped) is one line naming the count and the first paths, not 5,000 lines."""
    if len(paths) == 1:
        log.warning(kv(msg="retrying", target=target, path=paths[0], attempt=attempt, error=error))
    else:
        log.warning(kv(msg="retrying", target=target, ops=len(paths), first=", ".join(paths[:3]),
                       attempt=attempt, error=error))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
