"""Paths the fanotify watcher reported from handles resolved late, and what to re-report.

A fanotify event names its directory by handle; the handle becomes a path when the
event is READ. If that directory (or one above it) was renamed in between, the
event is reported under the new name, BEFORE the move that explains it: "rmdir
P/X; mv P Q" reads as rmtree Q/X, then move P -> Q. A journal applies them in that
order: the rmtree finds nothing at Q/X, then the move carries P/X along to Q/X,
and the mirror keeps a directory the source does not have (the churn test's "one
extra directory", issue 18). A file or directory reported below Q before the move
is lost the same way (the move replaces Q on the target). A rescan of Q does not
cover it: it compares the source with what was shipped, and may run before the
move has been shipped.

So every path reported since the window opened is remembered (`note`), and when
a directory rename is read whose new path was resolved late, what was reported
below it is reported again after the move, as it stands on disk now
(`after_move`): those changes are recorded after the move and wait for it (a
directory move is a barrier in the journal), so the order is right whatever the
timing. The window closes once every event queued before the last lookup has been
read (the queue found empty, or a short read: see FanotifyWatcher.read).
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Callable

from mirrord.watch.events import FsEvent
from mirrord.watch.fanotify_scan import dir_events

MAX_NOTED = 50_000      # paths; past it the oldest window is forgotten (see note())


class LateReports:
    """Reported paths of the open window: rel path -> (window generation, was a directory).
    `root` is the source's absolute path, `excluded` its predicate."""

    def __init__(self, root: str, excluded: Callable[[str], bool]):
        self.root = root
        self.excluded = excluded
        self.noted: dict[str, tuple[int, bool]] = {}
        self.gen = 0
        # the generation in which a delete or rename out of a directory was read after that
        # directory was gone (None: none in the window): see FanotifyWatcher._renamed
        self.lost_departure: int | None = None
        self.overfull = 0       # windows forgotten because MAX_NOTED was reached

    def note(self, events: list[FsEvent]) -> None:
        """Remember the paths of `events` (both ends of a move). Past MAX_NOTED paths the
        window is forgotten and counted in `overfull`: its rescans remain the only cover."""
        if len(self.noted) >= MAX_NOTED:
            self.noted.clear()
            self.overfull += 1
        for ev in events:
            if ev.kind in ("overflow", "watch_error", "lost") or not ev.path:
                continue
            is_dir = ev.is_dir or self.noted.get(ev.path, (0, False))[1]
            self.noted[ev.path] = (self.gen, is_dir)
            if ev.src:
                self.noted[ev.src] = (self.gen, is_dir or self.noted.get(ev.src, (0, False))[1])

    def below(self, dst: str) -> list[str]:
        prefix = dst + "/"
        return sorted(p for p in self.noted if p.startswith(prefix))

    def after_move(self, dst: str) -> list[FsEvent]:
        """What was reported below `dst` (a directory just reported as moved there), as it
        stands on disk now: a directory with everything in it (dir_events), a file as a
        write, a name with nothing at it as a delete (rmtree when it was a directory)."""
        out: list[FsEvent] = []
        walked: list[str] = []
        for rel in self.below(dst):
            if any(rel.startswith(w + "/") for w in walked):
                continue    # already listed with a directory above it
            try:
                st = os.lstat(os.path.join(self.root, rel))
            except OSError:
                out.append(FsEvent("rmtree", rel, is_dir=True) if self.noted[rel][1]
                           else FsEvent("delete", rel))
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                walked.append(rel)
                out.extend(dir_events(self.root, self.excluded, rel))
            elif stat_mod.S_ISREG(st.st_mode):
                out.append(FsEvent("write", rel))
        return out

    def advance(self) -> int:
        """Open a new generation; returns the one before (for forget_upto)."""
        self.gen += 1
        return self.gen - 1

    def close(self, gen: int | None) -> None:
        """Forget what was noted in generations up to `gen` (None: all): every event queued
        before those reports were made has been read and handled since."""
        self.noted = {} if gen is None else {p: v for p, v in self.noted.items() if v[0] > gen}
        if self.lost_departure is not None and (gen is None or self.lost_departure <= gen):
            self.lost_departure = None
