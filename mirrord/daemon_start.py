"""Bringing a daemon up: the lock, the sources checked and watched, the targets opened.

Watches go in first: from that moment every change is queued by the kernel, so
a slow journal check or an unreachable target at start costs no missed events.
Targets open all at once, each on its own thread (a host that drops packets
costs its connect_timeout once, not once per target in turn).
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mirrord import locks
from mirrord.config import Config, SourceConfig
from mirrord.daemon_roots import AbsentRoot
from mirrord.errors import FatalError, MirrordError
from mirrord.fsutil import filesystem_type, remote_writes_unseen
from mirrord.logsetup import kv, register_secret
from mirrord.watch.events import FsEvent
from mirrord.watch.select import Watcher, open_watcher

if TYPE_CHECKING:   # the targets are imported once the sources are watched (issue 18)
    from mirrord.targets.base import Target

log = logging.getLogger("mirrord.daemon")


def take_lock(cfg: Config) -> locks.Lock:
    """The daemon lock on state_dir; FatalError naming the holder when another daemon has it."""
    try:
        return locks.take(cfg.mirrord.state_dir, locks.DAEMON)
    except locks.Busy as exc:
        raise FatalError(f"another mirrord daemon is running on state_dir "
                         f"{cfg.mirrord.state_dir} (pid {exc.pid or '?'})") from None


def check_sources(cfg: Config) -> list[SourceConfig]:
    """The sources whose root is not a directory now (a mount that is away, a path not
    made yet): they start lost and are watched once their root is back
    (mirrord.daemon_roots), so one missing root does not stop the others. FatalError when
    no source root is a directory (nothing to mirror: a wrong path, or the whole file
    system away; never mirror an empty mount point)."""
    missing = [src for src in cfg.sources if not src.path.is_dir()]
    if missing and len(missing) == len(cfg.sources):
        src = missing[0]
        raise FatalError(f"source {src.name}: {src.path} is not a directory "
                         f"([source:{src.name}] path); refusing to start")
    return missing


def create_targets(cfg: Config) -> dict[str, Target]:
    """Every target some source routes to, created (not opened), by name."""
    # imported here, after the watches are in place: see watch_sources
    from mirrord import targets as target_registry

    used = dict.fromkeys(t for s in cfg.sources for t in s.targets)
    return {name: target_registry.create(cfg.targets[name]) for name in used}


def start_opening(targets: dict[str, Target]) -> dict[str, Future[None]]:
    """Open every target at once, each on its own thread, while the journal is checked and
    the catch-up walks; shipping starts once every open has returned."""
    pool = ThreadPoolExecutor(max_workers=max(1, len(targets)), thread_name_prefix="open")
    opening = {name: pool.submit(target.open) for name, target in targets.items()}
    pool.shutdown(wait=False)   # its threads end with their open
    return opening


def finish_opening(opening: dict[str, Future[None]], targets: dict[str, Target]) -> None:
    """Wait for the opens. An unreachable target (MirrordError) is retried later; anything
    else (a bug, not a reachability error) is raised and stops the start."""
    for name, opened in opening.items():
        exc = opened.exception()
        if isinstance(exc, MirrordError):
            log.warning(kv(msg="target not reachable at start; will retry", target=name,
                           error=str(exc)))
        elif exc is not None:
            raise exc
        log.info(kv(msg="target", name=name, at=targets[name].describe()))


def expect_mirrors(journal, cfg: Config, targets: dict[str, Target]) -> None:
    """Tell each opened target that paths shipped to it are recorded, where they are
    (Target.expect_mirror): a local target whose root was missing or empty at open (its
    file system not mounted at boot) then writes nothing there until it holds the mirror
    again. Before, the daemon wrote new files and a fresh heartbeat into the bare mount
    point and said in_sync, while the mirror itself fell behind. Call after
    locations.check (a target moved to a new place has nothing shipped there yet).
    A source whose root holds nothing either (emptied on purpose, as the mirror was: a
    breaker's reconcile then had nothing to send, and the daemon refused the target for
    good) expects no mirror. Every target with paths shipped is told, found empty or
    not: one whose open failed makes it before its first command (the rsync target)
    and needs to know then. Raises what the journal raises."""
    for name, target in targets.items():
        if expects_mirror(journal, cfg, name):
            target.expect_mirror(
                f"{target.describe()}: the target root holds nothing while paths shipped to it "
                f"are recorded (is its file system mounted?): nothing is written there until "
                f"it holds the mirror again; emptied on purpose: stop the daemon and run "
                f"mirrord reconcile --target {name}")


def expects_mirror(journal, cfg: Config, name: str) -> bool:
    """Whether target `name` should hold a mirror: paths shipped to it are recorded for a
    source whose root holds something (mirrord.daemon_roots.root_back). Raises what the
    journal raises."""
    from mirrord.daemon_roots import root_back
    from mirrord.journal.read import has_shipped

    return any(has_shipped(journal.db, name, s.name) and root_back(str(s.path))
               for s in cfg.sources if name in s.targets)


@dataclass
class Watching:
    """What a start holds once every source is watched: the daemon lock, each source's
    watcher and start-up events (watch errors), and its file system type; by source name."""

    lock: locks.Lock
    watchers: dict[str, Watcher]
    events: dict[str, list[FsEvent]]
    source_fs: dict[str, str | None]
    missing: list[str] = field(default_factory=list)   # roots away at start (daemon_roots)

    def close(self) -> None:
        """Give up a start that will not run: watchers closed, lock released."""
        for watcher in self.watchers.values():
            watcher.close()
        self.lock.close()


def watch_sources(cfg: Config) -> Watching:
    """The first steps of a start, in the order that loses no event: the lock, the fd
    limit, the S3 secrets registered for redaction, the sources checked, then every
    source watched. `mirrord run` calls this before it imports the rest of the daemon
    (the journal, shipper, targets' SDKs), so the kernel queues changes from the
    earliest moment (issue 18: time to watching). A source whose root is missing gets an
    AbsentRoot and is named in `missing`. Raises FatalError (lock held, no source root a
    directory, a watcher that cannot start); nothing is left held then."""
    lock = take_lock(cfg)
    watching = Watching(lock, {}, {}, {})
    try:
        raise_fd_limit()
        for t in cfg.targets.values():
            if t.s3 is not None:
                register_secret(t.s3.secret_access_key)
        missing = {src.name for src in check_sources(cfg)}
        remembered = remembered_mounts(cfg)
        for src in cfg.sources:
            if src.name in missing:   # watched once it is back (daemon_roots.Roots)
                watching.watchers[src.name], watching.events[src.name] = AbsentRoot(), []
                watching.source_fs[src.name] = None
                watching.missing.append(src.name)
                continue
            watching.watchers[src.name], watching.events[src.name] = start_watcher(
                src, remembered.get(src.name, ()))
            watching.source_fs[src.name] = source_fs(src)
    except BaseException:
        watching.close()
        raise
    return watching


def remembered_mounts(cfg: Config) -> dict[str, list[str]]:
    """Per `auto` source, the mount points below its root the state database remembers
    (mirrord.submounts, state row submounts:NAME) that are not mounted now: `auto` takes
    inotify for them (mirrord.watch.select.choose). Read with sqlite3 alone, read-only,
    before the journal is opened (time to watching: issue 18); {} when there is no state
    database yet or it cannot be read (the journal's own open reports that)."""
    wanted = [s for s in cfg.sources if s.watcher == "auto"]
    path = cfg.mirrord.journal_path
    if not wanted or not path.exists():
        return {}
    import json
    import sqlite3

    from mirrord.errors import JournalUnusable
    from mirrord.journal.opening import connect_readonly
    from mirrord.submounts import STATE_PREFIX, mounts_below, remembered

    out: dict[str, list[str]] = {}
    try:
        # opening's read-only connection, not a bare sqlite3 one: that removed a write-ahead
        # log beside a 0-byte journal.db (SQLite found no header and threw the log away)
        # before the journal's own open could refuse it, and the daemon started empty
        db = connect_readonly(path)
        try:
            for src in wanted:
                row = db.execute("SELECT value FROM kv WHERE key = ?",
                                 (STATE_PREFIX + src.name,)).fetchone()
                points = remembered(json.loads(row[0])) if row else {}
                away = sorted(set(points) - set(mounts_below(str(src.path))))
                if away:
                    out[src.name] = away
        finally:
            db.close()
    except (sqlite3.Error, JournalUnusable, ValueError, OSError):
        return {}
    return out


def start_watcher(src: SourceConfig, remembered: Sequence[str] = ()) -> tuple[
        Watcher, list[FsEvent]]:
    """Watch one source with the backend its `watcher` key picks (mirrord.watch.select;
    `remembered`: its mount points remembered and away now, remembered_mounts); returns
    the watcher and its start-up events (watch errors)."""
    watcher = open_watcher(src, remembered)
    events = watcher.start()
    log.info(kv(msg="watching", source=src.name, path=str(src.path),
                directories=watcher.watched, leaves_not_listed=watcher.leaves_skipped))
    return watcher, events


def source_fs(src: SourceConfig) -> str | None:
    """The source's file system type; warns when other clients' writes to it raise no
    event here (NFS, CIFS, FUSE): those reach the targets only through reconcile."""
    fstype = filesystem_type(str(src.path))
    if remote_writes_unseen(fstype):
        log.warning(kv(msg="source is on a network or FUSE file system: changes made by "
                           "other clients of it raise no event here and are mirrored only "
                           "by reconcile ([reconcile] every)", source=src.name, fstype=fstype,
                       path=str(src.path)))
    return fstype


def raise_fd_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: workers hold source files open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
