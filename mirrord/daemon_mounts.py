"""The daemon's side of file systems mounted below a source root (mirrord.submounts).

At start each source's remembered mount points are read from the state database and
merged with the mount table, before the catch-up walks (a mount that went away while
the daemon was stopped is known to it). Every loop turn one poll(2) of
/proc/self/mounts says whether anything was mounted or unmounted; only then are the
points below each root read again. A point that is new, or mounted again with another
file system, has its watches placed again and its subtree compared with what was
shipped: inotify keeps no watch across a mount (the watches on the old file system get
IN_UNMOUNT and IN_IGNORED, inotify(7); the new one has none), so without this the
changes inside it were missed until a reconcile. The deletes refused while it was
gone are retried at once. A fanotify watcher's one mark sees no other file system: the
mount points below its root are counted unwatched (the source is degraded) and their
subtrees compared every RESCAN_EVERY seconds instead. Main thread only.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
import time
from typing import TYPE_CHECKING

from mirrord import daemon_roots, submounts
from mirrord.journal import Change
from mirrord.logsetup import kv

if TYPE_CHECKING:
    from mirrord.config import SourceConfig
    from mirrord.daemon import Daemon

log = logging.getLogger("mirrord.daemon")

RESCAN_EVERY = 5.0   # seconds between checks of what a fanotify mark cannot see (as unwatched.py)


def setup(d: Daemon) -> None:
    """Load and store each source's SubMounts in `d.mounts`, open the mount table and
    add the per-turn check to `d.periodic_hooks`. Raises what the journal raises."""
    for src in d.cfg.sources:
        mounts = submounts.load(d.journal, src)
        d.mounts[src.name] = mounts
        d.journal.set_state(submounts.STATE_PREFIX + src.name, mounts.snapshot())
        _log_lost(src, mounts, at="start")
    try:
        d.mount_table = submounts.MountTable()
    except OSError as exc:   # no /proc: what was remembered still guards the deletes
        log.warning(kv(msg="cannot watch the mount table; mounts below a source root are "
                       "read only at start", error=exc.strerror))
    d.periodic_hooks.append(tick)


def tick(d: Daemon) -> None:
    """If the mount table changed: read the points below each root again, re-watch and
    compare those that came (back), retry the source's refused deletes, store the
    result and log what is lost. Every RESCAN_EVERY seconds: compare what lies below
    the mount points a fanotify mark cannot see. A periodic hook (main thread)."""
    _rescan_unseen(d)
    if d.mount_table is None or not d.mount_table.changed():
        return
    # a root's own file system unmounted, or another mounted over it empty: held lost
    daemon_roots.hold_empty(d, "after a mount table change", mount_changed=True)
    if d.shipper is not None:   # a root not held lost, on a mount made anew: deletes go on
        for guard in d.shipper.guards.values():
            guard.relearn_mount()
    for src in d.cfg.sources:   # a fanotify mark: its file system gone ("lost"), mounts below
        watcher = d.watchers.get(src.name)
        if hasattr(watcher, "mounts_changed"):
            d._handle_events(src, watcher.mounts_changed())
    for src in d.cfg.sources:
        mounts = d.mounts.get(src.name)
        if mounts is None or src.name in d.roots.lost:   # kept as remembered: below
            continue
        before, was_mounted = mounts.snapshot(), mounts.mounted()
        was_lost = set(mounts.reported)
        came = mounts.refresh()
        lost_now = mounts.lost()
        gone = [rel for rel in lost_now if rel not in mounts.reported]
        # lost before, not now, and not mounted again: data moved in (_recheck_lost's
        # case). Compared here too: this tick's _settle forgets it was lost, and any mount
        # elsewhere on the host (another container's) made it so before the recheck came
        back = sorted(was_lost - set(lost_now) - set(came))
        # unmounted and not lost: what shows there now (a file bind-mounted over another,
        # a directory holding entries) is what the source holds, so it is compared too
        left = sorted(was_mounted - mounts.mounted() - set(lost_now))
        if came or gone or left:
            _rewatch(d, src, came + gone + left)
        for rel in came:
            log.info(kv(msg="file system mounted below the source root; watching and "
                        "comparing it", source=src.name, path=rel))
        for rel in came + left:
            _compare(d, src, rel)
        if came or left:
            _retry(d, src)
        _compare_back(d, src, [rel for rel in back if rel not in left])
        _settle(d, src, mounts, before, at="mount table changed")


# While a source's root is lost (its own file system unmounted, say), the mount points
# below it are not looked at: each path is missing or shows the bare mount point, so every
# remembered point read "retired" and was forgotten, and once the root was back the
# catch-up deleted on every target what the sub-mounts held (a breaker's nested bind
# mounts, both watchers). They are looked at again at the next change of the mount table
# after the root is back; meanwhile a point that shows empty is lost (SubMounts' rule).


def _compare(d: Daemon, src: SourceConfig, rel: str) -> None:
    """Compare what the source holds at mount point `rel` with what was shipped: a
    directory's subtree (a scan), or the one file a file bind mount covers (a put, which
    the shipper sends only if it differs): walking a file path found nothing, so a file
    bind-mounted over another kept the old bytes on every target."""
    try:
        is_dir = stat_mod.S_ISDIR(os.lstat(os.path.join(str(src.path), rel)).st_mode)
    except OSError:
        is_dir = False   # gone: the put finds it absent and removes it
    if is_dir:
        d.schedule_subtree_check(src, rel)
    else:
        d._record([Change(src.name, rel, "put")])


def _retry(d: Daemon, src: SourceConfig) -> None:
    """Retry at once the source's targets' rows refused while a mount was away."""
    for target in src.targets:
        if target in d.targets:
            d.journal.retry_now(target)


def _recheck_lost(d: Daemon) -> None:
    """A lost mount point can stop being lost without any mount: the operator moved the
    data in (it holds entries now, no longer a mount) and it is forgotten. Its deletes may
    then go, but nothing else would compare it (the live stream saw only what was written
    there), so what the moved-in data lacks stayed on the targets until a reconcile. Each
    point reported lost is looked at again every RESCAN_EVERY seconds (only while one is)."""
    for src in d.cfg.sources:
        mounts = d.mounts.get(src.name)
        if mounts is None or src.name in d.roots.lost:
            continue
        _compare_back(d, src, mounts.take_owed())   # a scan's deletes refused while empty
        if not mounts.reported:
            continue
        before = mounts.snapshot()
        mounts.refresh()   # forgets a retired point
        _compare_back(d, src, sorted(mounts.reported - set(mounts.lost())))
        _settle(d, src, mounts, before, at="recheck")


def _compare_back(d: Daemon, src: SourceConfig, back: list[str]) -> None:
    """Compare each point (relative) that is no longer lost without being mounted again
    (data moved in), and retry the source's refused deletes: the recheck's case, and a
    look at a changed mount table's."""
    for rel in back:
        log.info(kv(msg="file system below the source root is no longer lost or empty; "
                    "comparing it", source=src.name, path=rel))
        _compare(d, src, rel)
    if back:
        _retry(d, src)


def _settle(d: Daemon, src: SourceConfig, mounts: submounts.SubMounts,
            before: dict[str, int], *, at: str) -> None:
    """Log what is newly lost, and store what is remembered if it changed since `before`."""
    _log_lost(src, mounts, at=at)
    if mounts.snapshot() != before:
        d.set_state(submounts.STATE_PREFIX + src.name, mounts.snapshot())


def lost(d: Daemon) -> dict[str, list[str]]:
    """Per source, the remembered mount points that are lost now (for status)."""
    return {name: m.lost() for name, m in d.mounts.items()}


def _rewatch(d: Daemon, src: SourceConfig, points: list[str]) -> None:
    """Place the watches a mount or unmount at `points` (relative) took away or added: an
    inotify watcher's rewatch_at each (that subtree only: a whole rewatch lists every
    directory of the tree). A fanotify watcher learns the mount points its mark cannot
    see (counted unwatched) at every change of the table, in tick."""
    watcher = d.watchers.get(src.name)
    if hasattr(watcher, "rewatch_at"):
        for rel in points:
            d._handle_events(src, watcher.rewatch_at(rel))


def _rescan_unseen(d: Daemon) -> None:
    """Queue a subtree check of each mount point a fanotify watcher reports unwatched,
    every RESCAN_EVERY seconds: its FAN_MARK_FILESYSTEM mark sees nothing below them, so
    without this a change there waited for a reconcile (the watch_error line promises
    a rescan every few seconds)."""
    now = time.monotonic()
    if now < d.mounts_rescan_at:
        return
    d.mounts_rescan_at = now + RESCAN_EVERY
    _recheck_lost(d)
    for src in d.cfg.sources:
        watcher = d.watchers.get(src.name)
        if getattr(watcher, "mounts_changed", None) is None:
            continue
        for rel in watcher.unwatched_paths(limit=1000):
            d.schedule_subtree_check(src, rel)


def _log_lost(src: SourceConfig, mounts: submounts.SubMounts, *, at: str) -> None:
    """One ERROR line per mount point newly lost (a mount table that changes for other
    reasons, on a busy host, repeats nothing)."""
    lost = mounts.lost()
    for rel in lost:
        if rel not in mounts.reported:
            log.error(kv(msg="file system below the source root is not mounted; deletes "
                         "below it are refused until it is back", source=src.name, path=rel,
                         at=at))
    mounts.reported = set(lost)
