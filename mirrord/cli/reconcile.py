"""`mirrord reconcile`: one full compare-and-repair pass, then a summary.

For every target (or `--target NAME`) and every source routed to it, the
engine (mirrord.reconcile) proposes repairs; they go into the same journal the
daemon uses. When no daemon holds `state_dir/daemon.lock`, this command ships
them itself with the daemon's Shipper; when one does, it only enqueues and
waits for the daemon to drain its rows. Deletes are enqueued only after every
repair of the pass is done, and not at all if a repair failed.

Exit codes: 0 every target ends in sync; 1 something could not be repaired
(errors, refused or failed deletes, rows still queued at the timeout);
2 usage or configuration error. `--dry-run` changes nothing and prints the
plan; it exits 1 only when the pass itself had errors or would refuse deletes.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mirrord import targets as target_registry
from mirrord.config import Config
from mirrord.errors import MirrordError
from mirrord.journal import Change, Journal
from mirrord.logsetup import register_secret
from mirrord.progress import Progress
from mirrord.reconcile import ReconcileResult, reconcile_pass
from mirrord.shipper import Shipper, SourceGuard
from mirrord.targets.base import Target

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DAEMON_WAIT = 900.0     # seconds to wait for a running daemon to ship our rows
PLAN_LIMIT = 1000       # plan entries per target kept for --json --dry-run


def add_parser(sub) -> None:
    p = sub.add_parser("reconcile", help="compare sources with targets and repair differences",
                       description="One full pass: list source and target side by side, repair "
                                   "what is missing, changed or extra, print a summary.")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--delete", dest="delete", action="store_true", default=None,
                       help="delete extra files on the target ([reconcile] delete = yes)")
    group.add_argument("--no-delete", dest="delete", action="store_false",
                       help="keep extra files on the target")
    p.add_argument("--checksum", action="store_true", default=None,
                   help="also compare content hashes of same-size, same-mtime files")
    p.add_argument("--target", metavar="NAME", help="only this target ([target:NAME])")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


@dataclass
class TargetReport:
    """The summary line of one target, over all its sources."""

    target: str
    compared: int = 0
    missing: int = 0
    changed: int = 0
    extra: int = 0
    deleted: int = 0
    refused_deletes: int = 0
    kept_extra: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    delete_refusal: list[str] = field(default_factory=list)
    duration: float = 0.0
    would_send: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not self.errors and not self.refused_deletes

    def add(self, r: ReconcileResult) -> None:
        for name in ("compared", "missing", "changed", "extra", "refused_deletes", "kept_extra"):
            setattr(self, name, getattr(self, name) + getattr(r, name))
        self.errors.extend(r.errors)
        if r.delete_refusal:
            self.delete_refusal.append(r.delete_refusal)

    def refuse(self, count: int, why: str) -> None:
        self.refused_deletes += count
        self.delete_refusal.append(why)

    def as_dict(self, *, dry_run: bool) -> dict:
        doc = asdict(self)
        doc["in_sync"] = self.in_sync
        doc["duration"] = round(self.duration, 3)
        if not dry_run:
            doc.pop("would_send")
            doc.pop("would_delete")
        return doc


def run(args: argparse.Namespace, cfg: Config) -> int:
    names = _selected_targets(args, cfg)
    if names is None:
        return EXIT_USAGE
    for t in cfg.targets.values():
        if t.s3 is not None:
            register_secret(t.s3.secret_access_key)
    delete = cfg.reconcile.delete if args.delete is None else args.delete
    checksum = cfg.reconcile.checksum if not args.checksum else True
    session = _Session(cfg, dry_run=args.dry_run, delete=delete, checksum=checksum,
                       quiet=args.json)
    try:
        reports = session.run(names)
    finally:
        session.close()
    _print_summary(reports, as_json=args.json, dry_run=args.dry_run, delete=delete)
    return EXIT_OK if all(r.in_sync for r in reports) else EXIT_FAILURE


def _selected_targets(args: argparse.Namespace, cfg: Config) -> list[str] | None:
    used = [name for name in cfg.targets if cfg.sources_for(name)]
    if args.target is None:
        return used
    if args.target not in cfg.targets:
        known = ", ".join(cfg.targets) or "none"
        print(f"mirrord: config error: {cfg.path}: --target {args.target}: there is no "
              f"[target:{args.target}] section (targets: {known})", file=sys.stderr)
        return None
    if args.target not in used:
        print(f"mirrord: config error: {cfg.path}: --target {args.target}: no [source:*] lists "
              f"it in its targets key", file=sys.stderr)
        return None
    return [args.target]


class _Session:
    """One `mirrord reconcile` run: locks, the journal, then the targets one after another."""

    def __init__(self, cfg: Config, *, dry_run: bool, delete: bool, checksum: bool, quiet: bool):
        self.cfg, self.dry_run, self.delete, self.checksum = cfg, dry_run, delete, checksum
        self.quiet = quiet
        self.progress = Progress(enabled=None if not quiet else False)
        self.journal: Journal | None = None
        self.lock_fd: int | None = None
        self.daemon = False
        self.wake = threading.Event()
        self.stop = threading.Event()     # set on Ctrl-C: the pass ends without deleting

    def close(self) -> None:
        self.progress.close()
        if self.journal is not None:
            self.journal.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)

    def run(self, names: list[str]) -> list[TargetReport]:
        if not self.dry_run:
            self._open_journal()
        return [self._target(name) for name in names]

    def _open_journal(self) -> None:
        state_dir = self.cfg.mirrord.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir / "reconcile.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MirrordError(f"another mirrord reconcile is running on state_dir {state_dir}") from None
        self.lock_fd = fd
        self.daemon = daemon_running(state_dir)
        routes = {s.name: s.targets for s in self.cfg.sources}
        # With a daemon running, its claims are its own: never reset them.
        self.journal = Journal(self.cfg.mirrord.journal_path, routes, check=False,
                               reset_claims=not self.daemon)
        if self.daemon:
            print("mirrord: a daemon is running: queueing repairs for it to ship",
                  file=sys.stderr)

    # ------------------------------------------------------------ one target
    def _target(self, name: str) -> TargetReport:
        report = TargetReport(name)
        started = time.monotonic()
        try:
            target = target_registry.create(self.cfg.targets[name])
            target.open()
        except (MirrordError, OSError) as exc:
            report.errors.append(f"cannot open target {name}: {exc}")
            return report
        shipper = None
        try:
            if not self.dry_run and not self.daemon:
                shipper = self._shipper(name, target)
            runner = Runner(self.journal, shipper, name, self.wake) if not self.dry_run else None
            for src in self.cfg.sources_for(name):
                self._source(target, src, report, runner)
        finally:
            if shipper is not None:
                shipper.shutdown(wait=True)
            target.close()
            report.duration = time.monotonic() - started
            self.progress.close()
        if self.journal is not None:
            self.journal.set_state(f"reconcile:{name}", self._state(report))
        return report

    def _shipper(self, name: str, target: Target) -> Shipper:
        guards = {}
        for src in self.cfg.sources_for(name):
            try:
                guards[src.name] = SourceGuard(str(src.path))
            except OSError:
                pass  # a missing root: the pass reports it, and deletes are refused
        return Shipper({name: target}, self.cfg.sources, {name: self.cfg.targets[name].workers},
                       wake=self.wake.set, guards=guards)

    def _source(self, target: Target, src, report: TargetReport, runner: Runner | None) -> None:
        deletes: list[Change] = []
        result = self._pass(target, src, report, runner, deletes)
        report.add(result)
        if runner is None:
            report.bytes += result.bytes
            report.deleted += result.deleted
            report.would_delete.extend(_describe(c) for c in deletes[:PLAN_LIMIT])
            for c in deletes:
                self._say(f"would delete {target.name}: {_describe(c)}")
            return
        first_failure = len(runner.failed)
        self._drain(runner, report, result)
        failed_repairs = len(runner.failed) - first_failure
        if deletes and failed_repairs:
            report.refuse(result.deleted, f"{failed_repairs} repairs failed on target "
                                          f"{target.name!r}: not deleting {result.deleted} "
                                          f"extra entries this pass")
            deletes = []
        if deletes:
            failed_before = runner.failed_deletes
            runner.add(deletes)
            self._drain(runner, report, result)
            lost = runner.failed_deletes - failed_before
            report.deleted += max(0, result.deleted - lost)
        report.bytes += runner.take_bytes()
        report.errors.extend(runner.failed[first_failure:])

    def _pass(self, target: Target, src, report: TargetReport, runner: Runner | None,
              deletes: list[Change]) -> ReconcileResult:
        """Run the engine in a thread; enqueue (or print) and ship while it walks."""
        proposals: queue.Queue[list[Change]] = queue.Queue(maxsize=20)
        box: dict[str, object] = {}
        live: dict[str, ReconcileResult] = {}

        def job() -> None:
            try:
                box["result"] = reconcile_pass(
                    self.cfg, target, src, emit=proposals.put, emit_deletes=deletes.extend,
                    delete=self.delete, checksum=self.checksum, stop=self.stop,
                    progress=lambda r: live.setdefault("r", r))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                box["error"] = exc
            finally:
                self.wake.set()

        thread = threading.Thread(target=job, name="reconcile", daemon=True)
        thread.start()
        self.progress.restart()
        try:
            while thread.is_alive() or not proposals.empty():
                try:
                    self._take(proposals.get(timeout=0.05), target.name, report, runner)
                except queue.Empty:
                    pass
                if runner is not None:
                    runner.pump()
                self._draw(target.name, live.get("r"), runner)
        except BaseException:
            self.stop.set()
            raise
        thread.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["result"]  # type: ignore[return-value]

    def _take(self, changes: list[Change], name: str, report: TargetReport,
              runner: Runner | None) -> None:
        if runner is not None:
            runner.add(changes)
            return
        room = PLAN_LIMIT - len(report.would_send)
        report.would_send.extend(_describe(c) for c in changes[:max(0, room)])
        for c in changes:
            self._say(f"would send {name}: {_describe(c)}")

    def _drain(self, runner: Runner, report: TargetReport, result: ReconcileResult) -> None:
        timeout = DAEMON_WAIT if self.daemon else None
        runner.wait(timeout, tick=lambda: self._draw(report.target, result, runner))

    def _draw(self, name: str, res: ReconcileResult | None, runner: Runner | None) -> None:
        if res is None:
            return
        counts = {"missing": res.missing, "changed": res.changed, "extra": res.extra}
        if runner is not None:
            counts.update(shipped=runner.done, queued=len(runner.pending))
        self.progress.update(f"{name} compared", res.compared, **counts)

    def _say(self, line: str) -> None:
        if not self.quiet:
            self.progress.close()
            print(line)

    def _state(self, report: TargetReport) -> dict:
        doc = report.as_dict(dry_run=False)
        doc["at"] = time.time() - report.duration
        doc["errors"] = report.errors[:20]
        return doc


MAX_ATTEMPTS = 3         # failed attempts after which a row of ours counts as not repaired
GIVE_UP_BACKOFF = 30.0   # a row retried later than this (a permanent error) counts as failed


class Runner:
    """Sees our journal rows through: ships them with a Shipper, or waits for the daemon.

    `pending` holds (source, path) of every row we enqueued and have not seen
    finish; a row is finished when it is gone from `ops` (acked), failed when
    it was tried MAX_ATTEMPTS times or put off by a permanent error. Failed rows
    stay in the journal: the daemon (or the next run) retries them.
    """

    def __init__(self, journal: Journal | None, shipper: Shipper | None, target: str,
                 wake: threading.Event, *, clock=time.monotonic):
        assert journal is not None
        self.journal, self.shipper, self.target, self.wake = journal, shipper, target, wake
        self.clock = clock
        self.pending: dict[tuple[str, bytes], tuple[str, int]] = {}
        self.done = 0
        self.failed: list[str] = []
        self.failed_deletes = 0
        self._bytes = 0

    def add(self, changes: list[Change]) -> None:
        self.journal.enqueue(changes)
        for ch in changes:
            self.pending[(ch.source, os.fsencode(ch.path))] = (ch.kind, ch.size)

    def pump(self) -> None:
        """Record finished work, hand ready rows to free workers (when we ship ourselves)."""
        if self.shipper is None:
            return
        outcomes = self.shipper.completed()
        if outcomes:
            self.journal.ack(outcomes)
        self.shipper.take_work(self.journal, self.target)

    def wait(self, timeout: float | None, *, tick=lambda: None) -> None:
        """Until every pending row finished or failed (or `timeout` seconds passed)."""
        deadline = None if timeout is None else self.clock() + timeout
        next_poll = 0.0
        while self.pending:
            self.pump()
            now = self.clock()
            if now >= next_poll:
                self.poll()
                next_poll = now + 0.05 + len(self.pending) / 20000
            if deadline is not None and now > deadline and self.pending:
                self._give_up(timeout)
            tick()
            self.wake.wait(0.05)
            self.wake.clear()
        self._settle_inflight()

    def poll(self) -> None:
        now = time.time()
        groups: dict[str, list[bytes]] = {}
        for source, path in self.pending:
            groups.setdefault(source, []).append(path)
        for source, paths in groups.items():
            for i in range(0, len(paths), 500):
                chunk = paths[i:i + 500]
                rows = self.journal.db.execute(
                    "SELECT path, attempts, claimed, next_try, last_error FROM ops WHERE target = ? "
                    f"AND source = ? AND path IN ({','.join('?' * len(chunk))})",
                    (self.target, source, *chunk)).fetchall()
                found = {bytes(r[0]): r for r in rows}
                for path in chunk:
                    row = found.get(path)
                    if row is None:
                        self._finished((source, path))
                    elif not row[2] and (row[1] >= MAX_ATTEMPTS
                                         or (row[1] and row[3] - now > GIVE_UP_BACKOFF)):
                        self._failed((source, path), row[4] or "failed")

    def take_bytes(self) -> int:
        n, self._bytes = self._bytes, 0
        return n

    def _finished(self, key: tuple[str, bytes]) -> None:
        kind, size = self.pending.pop(key)
        self.done += 1
        if kind == "put":
            self._bytes += size

    def _failed(self, key: tuple[str, bytes], why: str) -> None:
        kind, _size = self.pending.pop(key)
        self.failed.append(f"{kind} {os.fsdecode(key[1])!r}: {why} (left in the journal for retry)")
        self.failed_deletes += kind == "delete"

    def _give_up(self, timeout: float | None) -> None:
        for key in list(self.pending):
            self._failed(key, f"still queued after {timeout:.0f}s (the daemon will ship it)")

    def _settle_inflight(self) -> None:
        """Ack what our workers are still doing (rows of others we claimed) before leaving."""
        if self.shipper is None:
            return
        while self.shipper.busy():
            outcomes = self.shipper.completed()
            if outcomes:
                self.journal.ack(outcomes)
            self.wake.wait(0.05)
            self.wake.clear()
        outcomes = self.shipper.completed()
        if outcomes:
            self.journal.ack(outcomes)


def daemon_running(state_dir: Path) -> bool:
    """True when a process holds the daemon's flock on state_dir/daemon.lock.

    Read from /proc/locks rather than by trying the lock, so that probing can
    never make a daemon that is starting at that moment fail to get it.
    """
    path = state_dir / "daemon.lock"
    try:
        st = os.stat(path)
    except OSError:
        return False
    try:
        pid = path.read_text().split()[0]
    except (OSError, IndexError):
        pid = ""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return _probe_lock(path)
    exact = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        f = line.replace("->", " ").split()
        if len(f) < 6 or f[1] != "FLOCK":
            continue
        if f[5] == exact or (f[5].rsplit(":", 1)[-1] == str(st.st_ino) and f[4] == pid):
            return True
    return False


def _probe_lock(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _describe(change: Change) -> str:
    return change.path + ("/" if change.tree or change.kind == "mkdir" else "")


def _print_summary(reports: list[TargetReport], *, as_json: bool, dry_run: bool,
                   delete: bool) -> None:
    if as_json:
        doc = {"dry_run": dry_run, "delete": delete,
               "in_sync": all(r.in_sync for r in reports),
               "targets": {r.target: r.as_dict(dry_run=dry_run) for r in reports}}
        print(json.dumps(doc, sort_keys=True))
        return
    head = ("target", "compared", "missing", "changed", "extra", "deleted",
            "bytes to send" if dry_run else "bytes shipped", "errors", "duration", "result")
    rows = [head]
    for r in reports:
        result = "in sync" if r.in_sync else "NOT in sync"
        if dry_run:
            result = "plan ok" if r.in_sync else "problems"
        deleted = f"{r.deleted}" + (" (delete off)" if r.kept_extra else "")
        rows.append((r.target, f"{r.compared:,}", f"{r.missing:,}", f"{r.changed:,}",
                     f"{r.extra:,}", deleted, _size(r.bytes), f"{len(r.errors)}",
                     f"{r.duration:.1f}s", result))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for r in reports:
        for why in r.delete_refusal:
            print(f"{r.target}: {why}")
        for err in r.errors[:20]:
            print(f"{r.target}: error: {err}")
        if len(r.errors) > 20:
            print(f"{r.target}: ... and {len(r.errors) - 20} more errors")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
