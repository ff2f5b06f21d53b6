"""A source root lost while the daemon runs, or missing at its start, and its return.

A root deleted, renamed away, unmounted or mounted over ends its watcher's use: the
watcher reports "lost" (inotify: IN_DELETE_SELF, IN_MOVE_SELF or IN_UNMOUNT on the
root's watch, inotify(7); fanotify: the root's file handle changed). Before this module
the source went on showing `ok` in status while nothing of it was watched, and it was
watched again only after a restart, which a root still missing refused outright, taking
every other source down with it. Now, until the root is back:
- its later events are dropped (a root renamed away still reports below its new place,
  with paths that name nothing at the configured one);
- status shows the source `lost` (`root_lost`: why), and each target it feeds is
  `degraded` on /ready, in its heartbeat and in mirrord_target_state (target_state.py);
- nothing of it is deleted anywhere (the shipper's SourceGuard refuses while it is lost;
  the catch-up's and reconcile's empty-root and unreadable-root rules);
- the other sources go on.

`Roots`, a periodic hook, looks every CHECK_EVERY seconds. A root is back when it is a
directory again that is not empty (renamed back, remounted, restored). An empty one is
not back, whatever its st_dev and st_ino: it is what an unmount leaves (an empty tmpfs
mounted again even shows the old numbers), and watching it would be mirroring an empty
mount point. Once back, the source gets a new watcher, its SourceGuard takes the root's
new identity and refuses deletes no longer, and a catch-up compares the tree with what
was shipped (what changed meanwhile goes out; its deletes keep the catch-up's own
rules). A root that is empty at start while the journal records files shipped from it
(an unmounted file system, daemon_lifecycle) starts lost the same way. Every other
source's deletes wait for its start catch-up (Roots.await_start): a root back and a
start alike, a comparison that finds more gone than [reconcile] max_delete allows holds
the source's deletes until `mirrord resume-deletes`.

A root missing at start (check_sources) is lost from the start, with an AbsentRoot in
place of its watcher; the start is refused only when no source root is there at all.
Runs on the main thread only.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
import time
from typing import TYPE_CHECKING

from mirrord.fsutil import mount_point
from mirrord.logsetup import kv
from mirrord.watch.read_lag import ReadLag

if TYPE_CHECKING:
    from mirrord.config import SourceConfig
    from mirrord.daemon import Daemon

log = logging.getLogger("mirrord.daemon")

CHECK_EVERY = 1.0   # seconds between looks at a lost root (one stat, maybe one listing)


def root_back(path: str) -> bool:
    """Whether the root at `path` may be watched again: a directory (symlinks followed,
    as the config's path is) that holds something. Never raises: an unreadable root is
    not back. Its identity proves nothing: an empty tmpfs mounted again gets the st_dev
    the kernel freed and its root is always inode 1, and ext4 hands a directory made
    again the inode it freed, so an empty directory is never back."""
    try:
        if not stat_mod.S_ISDIR(os.stat(path).st_mode):
            return False
        with os.scandir(path) as entries:
            return next(entries, None) is not None
    except OSError:
        return False


def hold_empty(d: Daemon, when: str, *, refused: set[str] | None = None,
               mount_changed: bool = False) -> None:
    """Hold lost each source whose root is an empty directory now (`when`: at start, after
    a mount table change) while the journal records files shipped from it: its file
    system not mounted, or an empty one mounted in its place (an empty tmpfs mounted again
    even shows the old st_dev and inode). The changes queued before found their files gone
    and went out as deletes: a breaker's restart after an unmount took 20,000 files down
    to 560, and an empty tmpfs mounted at once in the root's place down to 48. Nothing
    changes for a root that never shipped. `refused` (target names): a reconcile pass
    refused deletes on them; a source feeding one that never shipped is held too (a first
    start on an unmounted mount point beside a mirror holding files: the pass refused to
    empty the mirror, and the targets read `in_sync` meanwhile, a trial's finding, while
    an unmount under the running daemon read `lost`). One that shipped is not: its root
    emptied while the daemon runs is a user's deletes, which the live stream carries (the
    pass's refusal is the pass's own rule). `mount_changed` (after a mount table change):
    a root that still shows the directory and the unique mount ID its guard learnt is not
    held, since what changed was mounted elsewhere; any mount or unmount on the host
    (another container's, a test beside it) held an emptied root lost, and its deletes
    waited until a file was written there again. Where the kernel gives no unique mount ID
    (before Linux 6.8, mirrord.mountid) every empty root is held, as before. Raises what
    the journal raises."""
    from mirrord.journal.read import has_shipped

    for src in d.cfg.sources:
        if src.name in d.roots.lost or root_back(str(src.path)):
            continue
        if mount_changed and _on_learnt_mount(d, src.name):
            continue
        shipped = any(has_shipped(d.journal.db, t, src.name) for t in src.targets)
        if refused is not None:
            if not shipped and any(t in refused for t in src.targets):
                d.roots.lose(d, src, f"the source root is empty {when}, and a reconcile pass "
                                     f"refused to delete what its targets hold (a file "
                                     f"system not mounted?)")
        elif shipped:
            d.roots.lose(d, src, f"the source root is empty {when} while files shipped from "
                                 f"it are recorded (a file system not mounted?)")


class AbsentRoot:
    """The watcher of a source whose root is missing at start: reports nothing, holds a
    descriptor that never becomes readable (the main loop's select wants a descriptor), until
    Roots replaces it with a real watcher. The attributes the daemon reads of a watcher."""

    watched = 0
    unwatched = 0
    leaves_skipped = 0

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_CLOEXEC)   # never written: never readable
        self.read_lag = ReadLag()                   # nothing to read: never behind

    def fileno(self) -> int:
        return self._fd

    def read(self, timeout_ms: int = 0) -> list:
        return []

    def settle(self) -> list:
        return []

    def rewatch(self) -> list:
        return []

    def next_deadline(self) -> float | None:
        return None

    def unwatched_paths(self, limit: int = 20) -> list[str]:
        return []

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass   # closed already


class Roots:
    """The lost source roots of one daemon: `lost` maps a source name to why, and
    calling the object (a periodic hook) brings back the roots that are back."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.lost: dict[str, str] = {}
        # source -> the catch-up reason ("start", "root-back") its deletes wait for (compared)
        self.comparing: dict[str, str] = {}
        # source -> how its root's file system changed (fs_change): its comparison at start
        # or at the root's return holds any delete (mirrord.catchup's cap), not only many
        self.moved: dict[str, str] = {}
        # source -> the mount point its root was watched on (fsutil.mount_point; status doc)
        self.mount_points: dict[str, str | None] = {}
        self._next = 0.0

    def lose(self, d: Daemon, src: SourceConfig, detail: str) -> None:
        """Record `src`'s root as lost (`detail`: why, shown in status). Idempotent."""
        if src.name in self.lost:
            return
        guard = _guard(d, src.name)
        if guard is not None:
            guard.lost = True
        self.lost[src.name] = detail
        self.comparing.pop(src.name, None)   # its return is compared anew (_back)
        d.counters.root_lost += 1
        log.error(kv(msg="source root lost; nothing of it is watched or deleted until it is "
                         "back (checked every second); the other sources go on",
                     source=src.name, path=str(src.path), detail=detail))

    def __call__(self, d: Daemon) -> None:
        if not self.lost:
            return
        now = self.clock()
        if now < self._next:
            return
        self._next = now + CHECK_EVERY
        for name in list(self.lost):
            src = d.cfg.source(name)
            if root_back(str(src.path)):
                self._back(d, src)

    def _back(self, d: Daemon, src: SourceConfig) -> None:
        """Watch `src` again, give its guard the root's identity now, and compare it with
        what was shipped. A watcher that cannot start leaves it lost (tried again later)."""
        from mirrord import daemon_start as start

        try:
            watcher, events = start.start_watcher(
                src, start.remembered_mounts(d.cfg).get(src.name, ()))
        except Exception as exc:  # noqa: BLE001 - a FatalError or OSError at start: retry later
            log.warning(kv(msg="source root is back but cannot be watched yet; retrying",
                           source=src.name, error=str(exc)))
            return
        old = d.watchers.get(src.name)
        d.watchers[src.name] = watcher
        if old is not None:
            old.close()
        guard = _guard(d, src.name)
        was = (guard.identity[0] if guard is not None and guard.identity else None,
               d.source_fs.get(src.name), self.mount_points.get(src.name))
        if guard is not None:
            try:
                guard.reset()   # still lost: its deletes wait for the comparison (compared)
            except OSError:
                pass   # gone again: stays refused; the next "lost" tells
        d.source_fs[src.name] = start.source_fs(src)
        self.mount_points[src.name] = mount_point(str(src.path))
        now = (guard.identity[0] if guard is not None and guard.identity else None,
               d.source_fs[src.name], self.mount_points[src.name])
        moved = fs_change(was, now)
        if moved:
            self.moved[src.name] = moved
        del self.lost[src.name]
        self.comparing[src.name] = "root-back"
        log.info(kv(msg="source root back; watching it again and comparing it with the "
                        "targets (its deletes wait for the comparison)", source=src.name,
                    path=str(src.path)))
        if d.metrics is not None:
            d.metrics.set_watched_dirs(sum(w.watched for w in d.watchers.values()))
        d._handle_events(src, events)
        d.catchups_pending.discard(src.name)   # one queued before is no comparison of this root
        d.schedule_catch_up(src, reason="root-back")

    def note_start_fs(self, d: Daemon) -> None:
        """At start, before the catch-ups are scheduled: a source whose root is on another
        mount or file system type than the last run watched it on (its status document's
        mount_point and fstype)
        gets no delete from its start comparison unless meant (resume-deletes): a volume
        not mounted, its bare mount point holding what the app wrote there since."""
        last = (d.journal.get_state("daemon") or {}).get("sources") or {}
        for src in d.cfg.sources:
            entry = last.get(src.name) if isinstance(last.get(src.name), dict) else {}
            if src.name not in self.lost:
                self.mount_points[src.name] = mount_point(str(src.path))
            moved = fs_change((None, entry.get("fstype"), entry.get("mount_point")),
                              (None, d.source_fs.get(src.name),
                               self.mount_points.get(src.name)))
            if moved:
                self.moved[src.name] = moved

    def await_start(self, d: Daemon, guards: dict) -> None:
        """At start, before any change is shipped: the deletes of each source not lost wait
        for its start catch-up (`guards`: the shipper's SourceGuards by source name). A
        restart with a wrong file system holding files in the root's place (a mount that
        failed, another volume) is no empty root, so hold_empty lets it be; the changes
        queued before the stop then found their files gone and went out as deletes, before
        the comparison that [reconcile] max_delete caps could tell. A breaker's restart of
        this shape took 1,200 files down to 1 in the running case (root-back, below); the
        same hold now covers a start. Costs a delete the start's comparison time."""
        for src in d.cfg.sources:
            if src.name not in self.lost:
                self.comparing[src.name] = "start"
                guards[src.name].comparing = "the comparison at start with what was shipped"

    def compared(self, d: Daemon, name: str, result: object) -> None:
        """A scan hook: the comparison a source's deletes wait for (at start, await_start;
        of a root back, _back) has ended. The changes queued before found their files gone
        and went out as deletes, whatever the file system (a breaker's empty tmpfs mounted
        in the root's place, one upload written there: back, and 820 of 1,200 files went).
        So a source's deletes wait until that comparison (its catch-up reason, "start" or
        "root-back") is done; when it found more gone than [reconcile] max_delete allows
        (mirrord.catchup's cap), the source's deletes are held as after a mass-change
        alarm, until `mirrord resume-deletes`. A comparison that failed is queued again
        (deletes still wait)."""
        source = name.split(":", 1)[1] if name.startswith("catchup:") else None
        reason = self.comparing.get(source) if source is not None else None
        if reason is None:
            return
        src = d.cfg.source(source)
        if isinstance(result, Exception):
            log.warning(kv(msg="comparison the source's deletes wait for failed; again",
                           source=source, reason=reason, error=str(result)))
            d.catchups_pending.discard(source)
            d.schedule_catch_up(src, reason=reason)
            return
        if not (isinstance(result, tuple) and result[2] == reason):
            return
        res = result[3]
        moved = self.moved.pop(source, None)
        if res.capped:
            how = "came back lacking" if reason == "root-back" else "lacked at start"
            limit = (f"and is {moved}" if moved else
                     "more than [reconcile] max_delete allows")
            why = (f"the source root {how} {res.capped_paths} shipped paths, {limit} on "
                   f"{', '.join(res.capped)}: a wrong file system? None of them is deleted "
                   f"and the source's other deletes wait; if they are meant, resume-deletes "
                   f"compares again without the cap")
            d.journal.hold_deletes(source, reason=why, since=time.time(),
                                   exempt=res.capped_paths)   # refused: never queued
            d.alarms.held.add(source)
            log.error(kv(msg="deletes held: " + why, source=source,
                         action=f"mirrord resume-deletes --source {source}"))
        del self.comparing[source]
        guard = _guard(d, source)
        if guard is not None:
            guard.comparing = None
            if source not in self.lost:
                guard.lost = False
        for target in src.targets:   # the deletes refused meanwhile: now
            if target in d.targets:
                d.journal.retry_now(target)


def fs_change(was: tuple, now: tuple) -> str | None:
    """How the source root's file system changed, or None: `was` and `now` are (st_dev or
    None, fstype or None, mount point or None); a part unknown on either side proves
    nothing. The mount point tells a volume that failed to mount on a host of its own
    file system type, or a bind mount lost (same device): both were "back"."""
    if was[2] and now[2] and was[2] != now[2]:
        return f"on another mount than before (mounted at {was[2]}, now at {now[2]})"
    if was[0] is not None and now[0] is not None and was[0] != now[0]:
        return (f"on another file system than before (device "
                f"{os.major(was[0])}:{os.minor(was[0])}, now {os.major(now[0])}:{os.minor(now[0])}"
                f"{'' if was[1] == now[1] else f'; {was[1]}, now {now[1]}'})")
    if was[1] and now[1] and was[1] != now[1]:
        return f"on another file system type than before ({was[1]}, now {now[1]})"
    return None


def _on_learnt_mount(d: Daemon, name: str) -> bool:
    """Whether source `name`'s root shows the directory its guard learnt, on the same
    mount by its unique ID (known: not None). False when the ID is unknown, or before the
    shipper is built."""
    guard = _guard(d, name)
    return guard is not None and guard.mount is not None and guard.healthy()


def _guard(d: Daemon, name: str):
    """The shipper's SourceGuard of source `name`; None before the shipper is built (the
    start marks the lost roots' guards itself, daemon_lifecycle)."""
    return d.shipper.guards.get(name) if d.shipper is not None else None
