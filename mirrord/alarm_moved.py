"""The renames a source made lately, for the mass-change alarm: a delete of a file whose
bytes a rename took to another name, where they stand in the source now, is no delete.

Why: a directory exchanged with another (renameat2 RENAME_EXCHANGE: `mv --exchange a b`,
an atomic swap of a release or thumbnail directory) reaches the daemon as a rename of one
of them and a look at both names as they stand (fanotify: the second half of the exchange;
inotify: the second rename's old name still holds a directory). The look compares each
name with what the targets hold there, which is still the other directory's files, and
proposes each of them as a delete and the files now there as puts. Counted as deletes,
two exchanges of two 10-file directories counted 20 (inotify 40), and an exchange storm of
larger ones fired the alarm (found by a fresh review, helper-136). A directory exchanged
with a file or a symlink is read by fanotify as the directory's rename, then the removal
of its tree at the old name (a file stands there now): that counted every file the
rename took. So did a tree removal read together with renames out of it (`mv a/f1 x;
mv a/sub y; rm -rf a`, fanotify: the rows moving them are not done yet, the target holds
them below `a` still). Nothing is lost in any of these: each file stands at the other name.

The rule: for NOTE_SECONDS after a rename `old` -> `new` is recorded (a file's or a
directory's), a file the targets hold at `old` (or below it: old/REL) is taken to have
gone on to `new` (new/REL) while that very file stands there in the source (a regular
file of the size and mtime the targets hold: another file of that name is no proof),
and the same the other way round (rename(2) puts a directory only where an empty one stood, so what
the targets held below `new` was either deleted first, each delete counted live and
queued, or went to `old` by an exchange). So is a file that stands at its own name again,
renamed away and back (a comparison that listed the name meanwhile proposed its delete).
A write reported at a name below such a rename, of a file that is the very version
every target holds there, replaces nothing (back_in_place: inotify's walk of a directory
exchanged or renamed back reports each file in it as written) and is no overwrite
(alarm_batch.count_batch).
Such a file's delete proposed by a comparison
is not counted (daemon_alarm_scan.observe_scan), nor its part of a tree removal
(alarm_batch.count_batch, which still counts at least 1). A file spared so counts
after all when the directory where it stood is removed before the targets hold it there
(spare, revived: `mv --exchange a b; rm -rf b` with the exchange in flight). A file deleted at both names
is counted, at the name where the live stream saw it go; a live file delete always
counts. In memory, at most MAX_NOTES renames per source, the oldest forgotten first: a
restart, or a comparison recorded later than NOTE_SECONDS, counts as before, the safe
side. Runs on the main thread only.
"""

from __future__ import annotations

import bisect
import itertools
import os
import stat
import time
from collections import OrderedDict
from typing import Callable, Iterable

from mirrord.compare import stored_ns
from mirrord.daemon_alarm_scan import ancestors

NOTE_SECONDS = 300.0   # how long after a rename deletes are looked at so: the look an
#                        exchange asks for runs on the scanner thread, behind any walk
#                        queued before it
MAX_NOTES = 10_000     # renames remembered per source
ENDS_LOOKED = 8        # the newest other ends looked at per name: a directory published
#                        again and again (`mv staging rel-N`, 3,000 times) made every
#                        delete below it an lstat per release (11.5 s for 1,000 files)

Version = tuple[int, int]   # (size in bytes, mtime in ns) of a file as the targets hold it


class MovedNames:
    """Per source, the renames recorded in the last NOTE_SECONDS."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        # source -> (old, new) -> monotonic time of the rename, oldest first
        self._notes: dict[str, OrderedDict[tuple[str, str], float]] = {}
        # source -> an end of a noted rename -> its other ends -> how many notes join them
        self._ends: dict[str, dict[str, dict[str, int]]] = {}
        self._sorted: dict[str, list[str]] = {}   # source -> its ends, sorted (near())
        # source -> where a file whose delete was spared stands -> when (spare, revived)
        self._spared: dict[str, OrderedDict[str, float]] = {}

    def renamed(self, source: str, old: str, new: str) -> None:
        """A file or directory of `source` renamed from `old` to `new` (source-relative
        paths), recorded now."""
        notes = self._notes.setdefault(source, OrderedDict())
        ends = self._ends.setdefault(source, {})
        if notes.pop((old, new), None) is None:
            for a, b in ((old, new), (new, old)):
                if a not in ends:
                    bisect.insort(self._sorted.setdefault(source, []), a)
                others = ends.setdefault(a, {})
                others[b] = others.get(b, 0) + 1
        notes[(old, new)] = self.clock()
        while len(notes) > MAX_NOTES:
            self._forget(source, *notes.popitem(last=False)[0])

    def lives_on(self, source: str, root: str, path: str, version: Version | None) -> bool:
        """Whether the file the targets hold at `path` (source-relative), of `version` (its
        size and mtime as shipped; None: not known, so no), stands at another name in the
        source below `root` now, taken there by a rename noted of `path` itself or of a
        directory above it: the rename's other end holds a regular file at the same place
        (lstat(2): no symlink, no directory) of that very size and mtime (to the ns: a
        rename keeps both), or `path` itself holds it again (renamed away and back).
        Another file of the same name there is not it: `mv photos photos.old`, new
        photos/* written, then photos.old moved out of the source, is 20 files destroyed
        (a review, helper-137). False when nothing noted applies. One dict
        lookup per directory above `path`, an lstat per end found (the ENDS_LOOKED newest)."""
        return self.copy_at(source, root, path, version) is not None

    def copy_at(self, source: str, root: str, path: str, version: Version | None) -> str | None:
        """Where lives_on found the file (a source-relative path: `path` itself, or a
        rename's other end), None where it did not."""
        if version is None:
            return None
        ends = self._live_ends(source)
        if not ends:
            return None
        here, looked_here = path, False
        while True:
            others = ends.get(here)
            if others:
                # renamed away and back (`mv a b; mv b a`, an exchange undone: `mv a c;
                # mkdir a; mv --exchange a c`): the very file stands at `path` again, and a
                # comparison that listed the name while it was elsewhere proposed its delete
                # (a 1,500-file directory fired the alarm, helper-169). Nothing is lost
                if not looked_here:
                    looked_here = True
                    if _same_file(os.path.join(root, path), version):
                        return path
                for there in itertools.islice(reversed(others), ENDS_LOOKED):
                    moved_to = there + path[len(here):]
                    if _same_file(os.path.join(root, moved_to), version):
                        return moved_to
            if "/" not in here:
                return None
            here = here.rpartition("/")[0]

    def spare(self, source: str, path: str, there: str) -> None:
        """A delete of `path` (a comparison's, or a file's below a tree removal) was not
        counted because the file stands at `there` (copy_at): remembered for NOTE_SECONDS
        (MAX_NOTES per source, the oldest forgotten first), so that a removal of `there`
        before the targets hold the file there counts it (revived)."""
        spared = self._spared.setdefault(source, OrderedDict())
        spared.pop(there, None)
        spared[there] = self.clock()
        while len(spared) > MAX_NOTES:
            spared.popitem(last=False)

    def revived(self, source: str, root: str, prefix: str, held: Callable[[str], bool]) -> int:
        """How many files spared (spare) at `prefix` or below it a removal of the directory
        `prefix` destroys: no regular file stands at that name below `root` now, and the
        targets do not hold one there (`held(path)`: Journal.holds), so their files were
        at the old name only, whose delete is queued and was not counted. Each is counted
        once (forgotten here). Why: `mv --exchange a b; rm -rf b`, the exchange still in
        flight when the removal came: the look at a proposed a's files as deletes, spared
        since they stood below b; the removal's count found b's old files deleted and a's
        queued deletes already "counted", 1 for ten files lost (a run beside another
        test). A put in flight at the name is counted twice (once by the removal), the
        safe side. One pass over the source's spared names (MAX_NOTES at most)."""
        spared = self._spared.get(source)
        if not spared:
            return 0
        cutoff = self.clock() - NOTE_SECONDS
        while spared and next(iter(spared.values())) < cutoff:
            spared.popitem(last=False)
        below = [p for p in spared if p == prefix or p.startswith(prefix + "/")]
        n = 0
        for there in below:
            del spared[there]
            if _standing(os.path.join(root, there)) is None and not held(there):
                n += 1
        return n

    def back_in_place(self, source: str, root: str, path: str,
                      held: Callable[[], Iterable[tuple]]) -> bool:
        """Whether a write reported at `path` (source-relative) replaces nothing the
        targets hold: a rename is noted of `path` or of a directory above it, and every
        version `held()` names there (Journal.held_versions: target, size, mtime_ns,
        token, ...; asked only when such a rename is noted) is a shipped one of the very
        size and mtime of the regular file standing at `path` below `root` now. Why:
        inotify reads the second half of `mv --exchange a c` (or a directory renamed
        back, its watch gone) as a new directory `a` and walks it, reporting each file
        it finds as written; a target that has not shipped the renames yet still holds
        each of them at a/REL, the very version, and each such "write" counted as an
        overwrite (1,501 for 1,501 files: the alarm fired under load, helper-169's
        scenario). A put or rename in flight there, or a version landed and not
        recorded, is not known well enough: counted as before. As for lives_on, a
        rewrite that keeps both size and mtime is not told from the file itself."""
        ends = self._live_ends(source)
        if not any(p in ends for p in itertools.chain((path,), ancestors(path))):
            return False
        versions = list(held())
        standing = _standing(os.path.join(root, path)) if versions else None
        return standing is not None and all(
            v[3] not in ("in flight", "landed") and (v[1], v[2]) == standing
            for v in versions)

    def any(self, source: str) -> bool:
        """Whether a rename of `source` is noted (within NOTE_SECONDS)."""
        return bool(self._live_ends(source))

    def near(self, source: str, path: str) -> bool:
        """Whether a rename noted has an end at, above or below `path`: only then may
        taken_elsewhere find anything there (a dict lookup per directory above `path`, and
        a binary search of the ends)."""
        ends = self._live_ends(source)
        if not ends:
            return False
        here = path
        while here:
            if here in ends:
                return True
            here = here.rpartition("/")[0]
        ordered = self._sorted.get(source, [])
        i = bisect.bisect_left(ordered, path + "/")
        return i < len(ordered) and ordered[i].startswith(path + "/")

    def taken_elsewhere(self, source: str, root: str,
                        held: Iterable[tuple[str, int, int]]) -> int:
        """How many of `held` (source-relative path, size, mtime_ns of files the targets
        hold) live on (lives_on) elsewhere; each is spared (spare) where it stands."""
        n = 0
        for path, size, mtime_ns in held:
            there = self.copy_at(source, root, path, (size, mtime_ns))
            if there is not None:
                self.spare(source, path, there)
                n += 1
        return n

    def _live_ends(self, source: str) -> dict[str, dict[str, int]]:
        notes = self._notes.get(source)
        if not notes:
            return {}
        cutoff = self.clock() - NOTE_SECONDS
        while notes and next(iter(notes.values())) < cutoff:
            self._forget(source, *notes.popitem(last=False)[0])
        return self._ends.get(source, {})

    def _forget(self, source: str, old: str, new: str) -> None:
        ends = self._ends[source]
        for a, b in ((old, new), (new, old)):
            others = ends[a]
            others[b] -= 1
            if not others[b]:
                del others[b]
                if not others:
                    del ends[a]
                    ordered = self._sorted[source]
                    del ordered[bisect.bisect_left(ordered, a)]


def _standing(full: str) -> Version | None:
    """(size, mtime_ns as stored) of the regular file at `full` (lstat(2): a symlink is
    not followed), None when no regular file stands there."""
    try:
        st = os.lstat(full)
    except OSError:
        return None
    return (st.st_size, stored_ns(st.st_mtime_ns)) if stat.S_ISREG(st.st_mode) else None


def _same_file(full: str, version: Version) -> bool:
    """A regular file stands at `full` (lstat) with `version`'s size and mtime."""
    return _standing(full) == version
