"""The mass-change alarm's questions to FirstCopies (mirrord.journal.first_copies): does
a target hold, at a path, a version this process sent that the write now reported did
not destroy (own_landing, own_shipped), or one landed and not recorded that it did
(landed, landed_base), and which version number a `shipped` row has
(number). Mixed into FirstCopies; asked on the journal's thread, under its lock.
The types and states of what is kept live here, FirstCopies re-exports them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Iterable

from mirrord.appends import WHOLE

Look = tuple[int, int, int]   # (size, mtime_ns, ctime_ns) of a source file
# what a worker sent: its look, the sample of its bytes (mirrord.appends), and whether it
# only extends the version last acked there (the kept version's sample matched its prefix)
Sent = tuple[Look, bytes, bool]
# the `shipped` row an ack replaced: (size, mtime_ns, its version number here; 0 unknown)
Row = tuple[int, int, int]
# an acked version: its look, its sample, whether the write that made it destroyed
# nothing the target held (the target's first copy, or an extension of the kept version),
# when not the `shipped` row its ack replaced, and its version number (> 0)
Kept = tuple[Look, bytes, bool, "Row | None", int]
Extends = Callable[[int, bytes], bool]   # the source file extends (size, sample) now
Counted = Callable[[int, int, int], bool]   # an overwrite of this Row was counted

PENDING = "pending"   # handed to a worker, the file not read yet: it sends what is there then
LOOKING = "looking"   # the worker is reading it now: what it sends is not known
NOTHING = "nothing"   # the worker sends no version (busy, gone, a directory, an error)

Key = tuple[str, str, str]   # (target, source, path)


class AlarmQuestions:
    """FirstCopies' lookups for the alarm; FirstCopies provides the state named below."""

    look_wait: float
    _lock: threading.Lock
    _looked: threading.Condition
    _in_flight: dict[Key, tuple[int, "str | Sent"]]
    _acked: OrderedDict[Key, Kept]
    _landed: OrderedDict[Key, tuple[Kept, Row]]

    def number(self, target: str, source: str, path: str, size: int, mtime_ns: int) -> int:
        """The version number of the `shipped` row (`size` bytes, `mtime_ns`) at `path` on
        `target`: the kept version's when its look says that size and mtime, else 0 (not
        known here: shipped before this process, by another, or forgotten)."""
        with self._lock:
            kept = self._acked.get((target, source, path))
        return _number(kept, size, mtime_ns)

    def any(self, source: str, path: str, targets: Iterable[str]) -> bool:
        """Whether anything is kept for `path` on one of `targets` (dict lookups)."""
        with self._lock:
            return any((t, source, path) in self._in_flight or (t, source, path) in self._acked
                       or (t, source, path) in self._landed for t in targets)

    def landed_base(self, target: str, source: str, path: str) -> Row | None:
        """The base (size, mtime_ns, version number) of the version landed, not recorded,
        at `path` on `target`; None when none is kept (Journal.held_versions)."""
        with self._lock:
            landed = self._landed.get((target, source, path))
        return landed[1] if landed is not None else None

    def landed(self, target: str, source: str, path: str,
               current: Callable[[], Look | None] | None,
               extends: Extends = lambda size, digest: False,
               counted: Counted = lambda size, mtime_ns, number: False) -> bool:
        """Whether a write at `path` destroys the version landed, not recorded, that the
        journal says `target` holds there (ops.landed: the caller asks it): True when
        nothing is kept of it here (a crash's, another process's: unknown, the safe side)
        or what is kept was not made harmlessly (first_of; made by a write counted
        already: `counted(*Row)`), or the source file as it is now (`current()`: (size,
        mtime_ns, ctime_ns), None when absent; `current` None: not looked at, the safe
        side) is neither that version nor only extends it."""
        with self._lock:
            landed = self._landed.get((target, source, path))
        if landed is None:
            return True
        kept = landed[0]
        if current is None or not (kept[2] or (kept[3] is not None and counted(*kept[3]))):
            return True
        look, digest = kept[:2]
        return not (current() == look or _grown(look, digest, current, extends))

    def own_landing(self, target: str, source: str, path: str,
                    current: Callable[[], Look | None],
                    extends: Extends = lambda size, digest: False) -> bool:
        """Whether the put this process has in flight at `path` on `target` lands no version
        the write now reported replaces: not read yet, nothing sent, exactly the source
        file as it is (`current()`: (size, mtime_ns, ctime_ns), None when absent), or a
        version the file now only extends (`extends(size, sample)`: mirrord.appends).
        A read under way is waited for, up to `look_wait` seconds: 4 scripts appending to
        new files every millisecond counted 29-65 of 0 while their puts' workers read.
        False when no such put is followed, or its read is still under way then."""
        key = (target, source, path)
        with self._lock:
            held = self._in_flight.get(key)
            if held is not None and held[1] == LOOKING:
                self._looked.wait_for(lambda: self._in_flight.get(key, (0, "")) != held,
                                      self.look_wait)
                held = self._in_flight.get(key)
        if held is None or held[1] == LOOKING:
            return False
        if held[1] in (PENDING, NOTHING):
            return True
        look, digest, _ = held[1]
        return current() == look or _grown(look, digest, current, extends)

    def own_shipped(self, target: str, source: str, path: str,
                    current: Callable[[], Look | None], shipped: Callable[[], tuple | None],
                    extends: Extends = lambda size, digest: False,
                    counted: Counted = lambda size, mtime_ns, number: False) -> bool:
        """Whether what `target` has shipped at `path` is the version kept here (its
        `shipped` row, `shipped()`: (size, mtime_ns, ...) or None, says the same size and
        mtime: another process, `mirrord reconcile`, may have shipped a later one), made
        by a write that destroyed nothing the target held (first_of) or whose destruction
        the alarm counted already (`counted(size, mtime_ns, number)` of the Row its ack
        replaced: mirrord.alarm_replaced), and the source file as it is now is that
        version or only extends it (as own_landing). A version made by a rewrite and
        acked before the rewrite's event was read, then appended to, is still counted:
        the rewrite destroyed the version before it, and no count of it was noted."""
        with self._lock:
            kept = self._acked.get((target, source, path))
        if kept is None or not (kept[2] or (kept[3] is not None and counted(*kept[3]))):
            return False
        meta = shipped()
        if meta is None or tuple(meta[:2]) != kept[0][:2]:
            return False
        look, digest = kept[:2]
        return current() == look or _grown(look, digest, current, extends)


def _number(kept: Kept | None, size: int, mtime_ns: int) -> int:
    """`kept`'s version number when it is the version of `size` bytes and `mtime_ns`,
    else 0 (not known here)."""
    return kept[4] if kept is not None and kept[0][:2] == (size, mtime_ns) else 0


def _grown(look: Look, digest: bytes, current: Callable[[], Look | None],
           extends: Extends) -> bool:
    """The source file is longer than `look` now and its first look[0] bytes sample to
    `digest`: written since only past the end of that version (an append). Or it has
    look[0] bytes, at most appends.WHOLE (sampled whole), that sample to `digest`: the
    very bytes of that version, under another mtime (coreutils `touch` seen live as a
    write counted one overwrite per file: a trial, helper-161)."""
    now = current()
    return (bool(digest) and now is not None
            and (now[0] > look[0] or now[0] == look[0] <= WHOLE) and extends(look[0], digest))
