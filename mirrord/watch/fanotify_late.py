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
timing. A name something LEFT (a reported rmtree, delete, rescan, or a move's old
end) has its tree removed first when something stands there again: the move carries
the target's copy of what left along, and a mkdir and writes alone would keep it
("mv P/X out; mkdir P/X; mv P Q" read late: the target kept Q/X's old contents). Those still in the read() call under way are taken out from before the
move (`take_back`): left there, work pending below Q when the move is recorded
makes the journal re-send Q whole instead of moving it. The window closes once every event queued before the last lookup has been
read (the queue found empty, or a short read: see FanotifyWatcher.read).
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Callable

from mirrord.watch.events import FsEvent
from mirrord.watch.fanotify_scan import as_it_stands, dir_events

MAX_NOTED = 50_000      # paths; past it the oldest window is forgotten (see note())
# reports that say what stood at a name may have left it (a rescan: the target may hold
# what the source lacks there); a move's old end is one too (note())
LEFT = frozenset({"rmtree", "delete", "rescan"})


class LateReports:
    """Reported paths of the open window: rel path -> (window generation, was a directory,
    something left it: LEFT). `root` is the source's absolute path, `excluded` its
    predicate."""

    def __init__(self, root: str, excluded: Callable[[str], bool]):
        self.root = root
        self.excluded = excluded
        self.noted: dict[str, tuple[int, bool, bool]] = {}
        # each directory -> the noted paths below it, built by below() only (a scan of
        # every noted path per directory rename was quadratic in a storm of exchanges),
        # from `_pending`, the paths noted since (None: rebuild from `noted`)
        self._under: dict[str, set[str]] | None = None
        self._pending: list[str] = []
        self.batch: set[str] = set()    # paths noted in the owner's read() call under way
        self.taken = 0      # events take_back and drop_replaced took out of `out` (mark())
        self.gen = 0
        # the generation in which a delete or rename out of a directory was read after that
        # directory was gone (None: none in the window): see FanotifyWatcher._renamed
        self.lost_departure: int | None = None
        # directories renamed into the tree while a departure was lost, waiting for the
        # sign that they replaced a directory (renamed_in / replaced), and the generation
        # in which that sign came first (None: not seen in the window)
        self.over: list[str] = []
        self.victim: int | None = None
        self.overfull = 0       # windows forgotten because MAX_NOTED was reached

    def note(self, events: list[FsEvent]) -> None:
        """Remember the paths of `events` (both ends of a move). Past MAX_NOTED paths the
        window is forgotten and counted in `overfull`: its rescans remain the only cover."""
        if len(self.noted) >= MAX_NOTED:
            self.noted.clear()
            self._under, self._pending = None, []
            self.overfull += 1
        pending = self._pending
        for ev in events:
            if ev.kind in ("overflow", "watch_error", "lost") or not ev.path:
                continue
            _, was_dir, left = self.noted.get(ev.path, (0, False, False))
            is_dir = ev.is_dir or was_dir
            self.noted[ev.path] = (self.gen, is_dir, left or ev.kind in LEFT)
            self.batch.add(ev.path)
            pending.append(ev.path)
            if ev.src:      # the old end of a move: its object left that name
                _, was_dir, _ = self.noted.get(ev.src, (0, False, False))
                self.noted[ev.src] = (self.gen, is_dir or was_dir, True)
                self.batch.add(ev.src)
                pending.append(ev.src)

    def mark(self, out: list[FsEvent]) -> int:
        """Before one event's translation: where what it appends to the read() call's `out`
        will start, for note_since. take_back and drop_replaced may take earlier events
        out of `out` meanwhile; counted by length alone, a rename that dropped what it
        replaced appended its move unnoted ("echo > fa; mv a/g fa; mv a b/a" read late:
        the move's old end b/a/g was never reported again after a -> b/a, and the move
        carried a/g along to b/a/g on the target)."""
        return len(out) + self.taken

    def note_since(self, out: list[FsEvent], mark: int) -> None:
        """Note what the translation since `mark` (mark()) appended to `out`."""
        start = mark - self.taken
        if len(out) > start:
            self.note(out[start:])

    def below(self, dst: str) -> list[str]:
        """The noted paths strictly below the directory `dst` (relative), sorted."""
        if self._under is None:
            self._under, self._pending = {}, list(self.noted)
        for path in self._pending:
            head = path.rpartition("/")[0]
            while head:
                self._under.setdefault(head, set()).add(path)
                head = head.rpartition("/")[0]
        self._pending = []
        return sorted(self._under.get(dst, ()))

    def take_back(self, dst: str, out: list[FsEvent]) -> bool:
        """Remove from `out` (the read() call's events, not yet returned) every event below
        `dst`, a directory just read as renamed there: they were named by today's path
        but happened before the move, and after_move reports them again after it. Left in,
        a change recorded below dst before the move makes the journal keep the move as a
        delete plus a re-send of the whole directory (Journal.enqueue_move: work pending
        at dst). Returns True when something reported below dst was returned earlier (the
        journal may hold it already: what was shipped below dst must be compared again)."""
        prefix = dst + "/"
        kept: list[FsEvent] = []
        for e in out:
            inside = [p.startswith(prefix) for p in (e.path, e.src) if p]
            if not any(inside):
                kept.append(e)
            elif not all(inside):   # a move across dst's edge: its other end stays, as it
                other = e.src if inside[0] else e.path      # stands (the inside end comes
                kept.append(as_it_stands(self.root, other, e.is_dir))   # after the move)
        self.taken += len(out) - len(kept)
        out[:] = kept
        return any(p not in self.batch for p in self.below(dst))

    def drop_replaced(self, dst: str, is_dir: bool, out: list[FsEvent]) -> None:
        """Remove from `out` (the read() call's events, not yet returned) what a rename to
        `dst`, read now, replaces: a write, attr or delete of the file at `dst`; for a
        directory, a mkdir, write or attr at or below it (a directory made and listed
        before the rename was read lists what the rename brought: "mkdir new; mv a
        new/a"). Left in, they make the journal keep the move as a delete plus a re-send
        (Journal.enqueue_move: work pending at dst). Deletes below a directory stay: the
        directory replaced was emptied by them. Moves stay (their source end counts)."""
        prefix = dst + "/"
        if is_dir:
            kept = [e for e in out if e.src or e.kind not in ("mkdir", "write", "attr")
                    or not (e.path == dst or e.path.startswith(prefix))]
        else:
            kept = [e for e in out if e.src or e.path != dst
                    or e.kind not in ("write", "attr", "delete")]
        self.taken += len(out) - len(kept)
        out[:] = kept

    def after_move(self, dst: str) -> list[FsEvent]:
        """What was reported below `dst` (a directory just reported as moved there), as it
        stands on disk now: a directory with everything in it (dir_events), a file as a
        write, a name with nothing at it as a delete (rmtree when it was a directory).
        Where something stands again at a name that something left (LEFT), or a file where
        a directory was reported, the name's tree is removed first: the move carried the
        target's copy of what left to that name, and a mkdir or write over it keeps what
        the source no longer has ("mv P/X out; mkdir P/X; mv P Q", read after the last
        rename: the move-out's rescan of Q/X, taken back, came out as a mkdir of Q/X, and
        Q/X kept the files of the directory moved out). The removal is recorded after the
        move, so it waits for it; a rescan (a subtree check, not ordered with the journal)
        could run before the move is shipped and find nothing to remove. A name below a
        directory listed here is skipped only when that directory's tree was removed
        first or nothing left the name: a listing sends what stands, never removes."""
        out: list[FsEvent] = []
        walked: list[str] = []      # directories listed here
        cleared: list[str] = []     # ... of them, those whose tree was removed first
        for rel in self.below(dst):
            _, was_dir, left = self.noted[rel]
            if any(rel.startswith(w + "/") for w in (walked if not left else cleared)):
                continue    # already listed (or removed and listed) with a directory above
            try:
                st = os.lstat(os.path.join(self.root, rel))
            except OSError:
                out.append(FsEvent("rmtree", rel, is_dir=True) if was_dir
                           else FsEvent("delete", rel))
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                walked.append(rel)
                if left:
                    cleared.append(rel)
                    out.append(FsEvent("rmtree", rel, is_dir=True))
                out.extend(dir_events(self.root, self.excluded, rel))
            elif stat_mod.S_ISREG(st.st_mode):
                if was_dir:
                    out.append(FsEvent("rmtree", rel, is_dir=True))
                out.append(FsEvent("write", rel))
        return out

    def renamed_in(self, dst: str) -> list[FsEvent]:
        """A directory renamed to `dst` while a delete or rename out of a directory gone by
        now was read (`lost_departure`): that directory may be the one `dst` replaced, its
        emptying unreported (no path). A rename over a directory is followed by FAN_ATTRIB
        on the replaced one (fsnotify_move() -> fsnotify_link_count(target), fs/namei.c),
        read with its handle gone: only with that sign is `dst` rescanned. Without it the
        lost departure was elsewhere on the file system (a directory emptied and removed
        by another program), and a rescan would only race the move: a subtree check that
        runs before the move is shipped re-sends every file below `dst`."""
        if self.victim is not None:
            return [FsEvent("rescan", dst, is_dir=True)]
        self.over.append(dst)
        return []

    def replaced(self) -> list[FsEvent]:
        """A directory's own FAN_ATTRIB read after it was gone: the sign of a rename over
        it. Rescans every directory renamed in that waited for it (renamed_in), or, when
        it comes first (merged into an earlier event of that directory), lets the next
        one be rescanned at once."""
        out = [FsEvent("rescan", d, is_dir=True) for d in self.over]
        self.over = []
        if not out:
            self.victim = self.gen
        return out

    def advance(self) -> int:
        """Open a new generation; returns the one before (for forget_upto)."""
        self.gen += 1
        return self.gen - 1

    def close(self, gen: int | None) -> None:
        """Forget what was noted in generations up to `gen` (None: all): every event queued
        before those reports were made has been read and handled since."""
        self.noted = {} if gen is None else {p: v for p, v in self.noted.items() if v[0] > gen}
        self._under, self._pending = None, []
        if self.lost_departure is not None and (gen is None or self.lost_departure <= gen):
            self.lost_departure = None
        if self.victim is not None and (gen is None or self.victim <= gen):
            self.victim = None
        # a rename's FAN_ATTRIB on the directory it replaced is queued with it: once the
        # queue was read past the rename, a directory still waiting replaced nothing
        self.over = []
