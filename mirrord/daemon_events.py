"""Watcher events -> journal changes, and what the daemon does about watch trouble.

Writes, attribute changes, deletes, new directories and removed trees become
Changes recorded through the daemon's Pipeline; a rename is recorded as a move
(a directory the move could not be kept for is walked and re-sent); a subtree
the watcher could not follow is checked by a subtree catch-up. Overflow (events
lost), watch errors and a lost source root are counted, logged, and handed to
the trouble hooks (the reconcile schedule); an overflow also re-watches the tree
and schedules a catch-up. Runs on the main thread only.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from mirrord.config import SourceConfig
from mirrord.journal import Change
from mirrord.logsetup import hook_name, kv
from mirrord.reconcile.schedule import BACKLOG_LIMIT
from mirrord.watch.inotify import FsEvent

log = logging.getLogger("mirrord.daemon")

LINK_WALK_EVERY = 30.0   # seconds between two walks for names of new hard links (LinkWalks)


class EventRouter:
    """Handles one source's batch of watcher events for a Daemon (`d`)."""

    def __init__(self, daemon):
        self.d = daemon

    def handle(self, src: SourceConfig, events: list[FsEvent]) -> None:
        """Record `events` of `src`; after a "lost" (and while its root is lost) the rest
        are dropped: they name paths below a root that is elsewhere (daemon_roots)."""
        if src.name in self.d.roots.lost:
            return
        now = time.time()
        changes: list[Change] = []
        trace = log.isEnabledFor(logging.DEBUG)
        for ev in events:
            if trace:   # [mirrord] log_level = debug: what the watcher reported, in order
                log.debug(kv(msg="event", source=src.name, kind=ev.kind, path=ev.path,
                             src=ev.src or "-", is_dir=int(ev.is_dir)))
            if ev.kind == "write":
                changes.append(Change(src.name, ev.path, "put", size=ev.size, time=now))
                changes += self._other_names(src, ev.path, "put", now)
            elif ev.kind == "attr":
                changes.append(Change(src.name, ev.path, "attr", time=now, is_dir=ev.is_dir))
                changes += self._other_names(src, ev.path, "attr", now)
            elif ev.kind == "delete":
                changes.append(Change(src.name, ev.path, "delete", time=now))
            elif ev.kind == "mkdir":
                changes.append(Change(src.name, ev.path, "mkdir", time=now))
            elif ev.kind == "rmtree":
                changes.append(Change(src.name, ev.path, "delete", tree=True, time=now))
            elif ev.kind == "move":
                self._record(src, changes)
                changes = []
                self._move(src, ev, now)
            elif ev.kind == "rescan":
                self.d.schedule_subtree_check(src, ev.path)
            else:
                self._trouble(src, ev)
                if ev.kind == "lost":
                    break
        self._record(src, changes)

    def _other_names(self, src: SourceConfig, rel: str, kind: str, now: float) -> list[Change]:
        """The same change for every other name of a hard-linked file at `rel`: the kernel
        reports only the name a writer used (mirrord.hardlinks)."""
        out = [Change(source, other, kind, time=now)
               for source, other in self.d.links.others(src.name, rel)]
        if self.d.links.take_walk():   # a name not seen yet: a walk of the sources finds it
            self.d.link_walks.want(src.name)
        return out

    def _record(self, src: SourceConfig, changes: list[Change]) -> None:
        """Count the batch for the mass-change alarm first: when it fires with pause on, the
        hold is in the journal before these deletes are (mirrord.daemon_alarm)."""
        self.d.alarms.observe(src, changes)
        self.d._record(changes)

    def _move(self, src: SourceConfig, ev: FsEvent, now: float) -> None:
        assert ev.src is not None and self.d.pipeline is not None
        # `cache/*.jpg` excludes cache/x.jpg but not cache2/x.jpg: with such excludes what the
        # targets hold below a directory's old name is not what belongs below the new one, so
        # it is never kept as a move: removed and re-sent, like a move with work in the way
        # (which also runs the rows in flight below the new name again: Journal.enqueue_move)
        as_move = not (ev.is_dir and src.excludes_depend_on_path)
        self.d.alarms.observe_move(src, ev.path, is_dir=ev.is_dir)   # a rename over: an overwrite
        self.d.links.moved(src.name, ev.src, ev.path)
        if not ev.is_dir:   # renamed into place: its create may have been read too late
            self.d.links.learn_path(src.name, ev.path)
        fallback = self.d.pipeline.record_move(src.name, ev.src, ev.path, is_dir=ev.is_dir,
                                               when=now, as_move=as_move)
        self.d.alarms.renamed(src, ev.src, ev.path, is_dir=ev.is_dir,
                              resent=bool(fallback) and ev.is_dir)
        if fallback and ev.is_dir:
            self.d.schedule_subtree(src, ev.path, fallback)

    def _trouble(self, src: SourceConfig, ev: FsEvent) -> None:
        if ev.kind == "overflow":
            self.d.counters.overflows += 1
            if self.d.metrics is not None:
                self.d.metrics.overflow()
            # the metric keeps its name (mirrord_inotify_overflows_total) for dashboards
            backend = type(self.d.watchers[src.name]).__name__
            log.warning(kv(msg="event queue overflow: events were lost; rescanning", source=src.name,
                           watcher="fanotify" if backend.startswith("Fanotify") else "inotify",
                           detail=ev.detail, overflows=self.d.counters.overflows))
            self.handle(src, self.d.watchers[src.name].rewatch())
            self.d.schedule_catch_up(src, reason="overflow")
            self._after_trouble(src, "overflow")
        elif ev.kind == "watch_error":
            self.d.counters.watch_errors += 1
            if self.d.metrics is not None:
                self.d.metrics.watch_error()
            log.error(kv(msg="cannot watch a directory: retrying with backoff; until then its "
                             "subtree is rescanned every few seconds and the source shows as "
                             "degraded", source=src.name, path=ev.path, detail=ev.detail))
            self._after_trouble(src, "watch_error")
        elif ev.kind == "lost":   # counted and logged there
            self.d.roots.lose(self.d, src, ev.detail or "lost")

    def _after_trouble(self, src: SourceConfig, reason: str) -> None:
        for hook in self.d.trouble_hooks:
            self.d._guarded(f"trouble hook {hook_name(hook)}", hook, self.d,
                            src, reason)



class LinkWalks:
    """A periodic hook (Daemon.periodic_hooks): the walk of every source that a change
    finding more links than names seen asks for (mirrord.hardlinks.take_walk), at most
    once per LINK_WALK_EVERY seconds and only once at most BACKLOG_LIMIT operations are
    queued. One walk per link, as first built, walked a 30,000-file tree 42 times for a
    dedup tool's 500 `ln` calls (13.9 s of CPU in 18 s), and the walks made while the
    first sync was still queued sent thousands of files twice (a breaker)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.wanted: set[str] = set()   # the sources a write through a new link came from
        self.last = float("-inf")

    def want(self, source: str) -> None:
        """A write of `source` reached a file with more links than names seen."""
        self.wanted.add(source)

    def __call__(self, d) -> None:
        if not self.wanted or self.clock() - self.last < LINK_WALK_EVERY:
            return
        if d.catchups_pending or d.journal.has_more_ops_than(BACKLOG_LIMIT):
            return   # the walk would re-propose what is still queued: after it drains
        self.wanted, self.last = set(), self.clock()
        for source in d.cfg.sources:
            if source.name not in d.roots.lost:
                d.schedule_catch_up(source, reason="links")
