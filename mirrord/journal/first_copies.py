"""A target's first copy of a file, as its workers saw it: so that the mass-change alarm
does not count the write that made a file as an overwrite of the copy sent of it.

A write is an overwrite when a target holds a version at its path (shipped, or a put or
rename landing: mirrord.journal.held_files). A put of a file the target never held carries
what its worker read at the source when it ran (mirrord.observe). Counted on the target
holding "some version", the write that made the file was counted against its own copy:
- a comparison (the start's catch-up, a reconcile pass) found a new file before the
  watcher's event of the write was read and sent it: `mirrord undelete --to-source`
  restoring 8 files while the start's pass listed the source counted 21 for 20 (a CI run
  of tests/e2e/test_alarm_counted_once.py);
- a slow writer: the first event of a file still open queued a put that waited
  (SourceBusy) and ran again as the writer closed it; the close's event, read while that
  put was in flight or just after its ack, counted it. 50 new directories of 5 files
  held open 1 s counted 56-57 of 250 (all new: 0 is right), by hand, inotify and fanotify.

So this remembers, per (target, source, path), what the put this process has in flight
there sends, and after its ack what the target's first version of the file was:
- in flight (registered by the shipper as it hands the op to a worker, updated by the
  worker): not looked at yet (the worker reads the file after the write: it sends that
  version or a later one), looking (the read under way: not known, counted), the worker's
  look (size, mtime_ns, ctime_ns), or nothing sent (the file was open for writing, gone, a
  directory: no version lands);
- acked: the worker's look, kept when the target held no version before that put (no
  `shipped` row when its ack was recorded); a later ack or delete there forgets it.
A write then replaces nothing on that target while the source file is still exactly the
version landing or acked as its first copy: the inode change time moves with every write,
truncate, chmod, link and rename and cannot be set back (stat(2), inode(7)). An older
version landing, a version the target held before (a `shipped` row that is no first copy),
a change since the look, a put of another process (`mirrord reconcile` while the daemon
ships), a look forgotten (memory only: MAX_LOOKS acked, the oldest first; a crash) all
count as before, the safe side.
Left, the unsafe side: a rewrite of the same size within one tick of the file system's
timestamp clock after the worker's look leaves size, mtime and ctime as they were and is
not counted, as mirrord.observe.changed_since cannot tell it. Kernels with multigrain
timestamps (6.13 on: ext4, xfs, btrfs, tmpfs) make the next change after a stat
fine-grained. No inode number is compared: a file renamed onto the path gets a new ctime.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from mirrord.journal.records import Op, Outcome
    from mirrord.observe import Observed

MAX_LOOKS = 16_384   # acked first copies, ~4 MiB; a late event comes within a batch window

Look = tuple[int, int, int]   # (size, mtime_ns, ctime_ns) of a source file

PENDING = "pending"   # handed to a worker, the file not read yet: it sends what is there then
LOOKING = "looking"   # the worker is reading it now: what it sends is not known
NOTHING = "nothing"   # the worker sends no version (busy, gone, a directory, an error)

Key = tuple[str, str, str]   # (target, source, path)


class FirstCopies:
    """The puts in flight from this process's shipper, what each worker saw, and the acked
    first copies (bounded). `sending` and `settled` run on the journal's thread, `looking`
    and `looked` on workers, the alarm's lookups on the journal's thread: one lock."""

    def __init__(self, limit: int = MAX_LOOKS):
        self.limit = limit
        self._lock = threading.Lock()
        self._in_flight: dict[Key, tuple[int, str | Look]] = {}   # -> (op id, state or look)
        self._acked: OrderedDict[Key, Look] = OrderedDict()

    # ------------------------------------------------------------ the shipper's side
    def sending(self, ops: Iterable[Op]) -> None:
        """`ops` (claimed) are handed to workers now; their files' puts are followed."""
        with self._lock:
            for op in ops:
                if op.kind == "put" and not op.is_dir:
                    self._in_flight[(op.target, op.source, op.path)] = (op.id, PENDING)

    def observed(self, op: Op, observe: Callable[[], Observed]) -> Observed:
        """`observe()` (a worker's look at `op`'s file), followed: looking while it runs,
        then what it found (nothing, when it raises; the exception propagates)."""
        self.looking(op)
        seen = None
        try:
            seen = observe()
            return seen
        finally:
            self.looked(op, seen)

    def looking(self, op: Op) -> None:
        """A worker reads `op`'s file now (before observe()); only an op sent through
        `sending` is followed."""
        self._set(op, LOOKING)

    def looked(self, op: Op, seen: Observed | None) -> None:
        """What the worker found (`seen`, observe()'s answer; None: it raised, nothing is
        sent). A regular file is the version it sends; anything else sends no version."""
        if seen is not None and seen.kind == "file" and seen.ctime_ns:
            self._set(op, (seen.size, seen.mtime_ns, seen.ctime_ns))
        else:
            self._set(op, NOTHING)

    def _set(self, op: Op, state: str | Look) -> None:
        key = (op.target, op.source, op.path)
        with self._lock:
            held = self._in_flight.get(key)
            if held is not None and held[0] == op.id:
                self._in_flight[key] = (op.id, state)

    # ------------------------------------------------------------ the ack's side
    def sent_look(self, op: Op) -> Look | None:
        """The look the worker of `op` sent, None when none (ask before the ack is recorded,
        then `settled`)."""
        with self._lock:
            held = self._in_flight.get((op.target, op.source, op.path))
        if held is None or held[0] != op.id or isinstance(held[1], str):
            return None
        return held[1]

    def first_of(self, out: Outcome, shipped: Callable[[Op], bool]) -> Look | None:
        """The look `out`'s worker sent when it is the target's first version of the file:
        a put done, followed from `sending`, with nothing shipped at its path before its
        ack is recorded (`shipped(op)`: a primary-key search, asked only then), or sending
        again exactly the first copy kept there (an event of the write that made it, read
        while the first put was in flight, ran the row once more)."""
        if out.error is not None or out.shipped_kind != "put" or out.is_dir:
            return None
        look = self.sent_look(out.op)
        if look is None:
            return None
        op = out.op
        if self._acked.get((op.target, op.source, op.path)) == look or not shipped(op):
            return look
        return None

    def settled(self, out: Outcome, first: Look | None) -> None:
        """`out`'s ack is recorded: its put is no longer in flight. `first`: the look it
        sent as the target's first version of the file (no `shipped` row before the ack),
        kept; else, the op done, what was kept for its path (and a move's old name) goes."""
        op = out.op
        key = (op.target, op.source, op.path)
        with self._lock:
            held = self._in_flight.get(key)
            if held is not None and held[0] == op.id:
                del self._in_flight[key]
        if out.error is not None:
            return
        if first is not None:
            self._acked[key] = first
            self._acked.move_to_end(key)
            while len(self._acked) > self.limit:
                self._acked.popitem(last=False)
            return
        self._acked.pop(key, None)
        if op.src is not None:
            self._acked.pop((op.target, op.source, op.src), None)

    # ------------------------------------------------------------ the alarm's side
    def any(self, source: str, path: str, targets: Iterable[str]) -> bool:
        """Whether anything is kept for `path` on one of `targets` (dict lookups)."""
        with self._lock:
            return any((t, source, path) in self._in_flight or (t, source, path) in self._acked
                       for t in targets)

    def own_landing(self, target: str, source: str, path: str,
                    current: Callable[[], Look | None]) -> bool:
        """Whether the put this process has in flight at `path` on `target` lands no version
        the write now reported replaces: not read yet, nothing sent, or exactly the source
        file as it is (`current()`: (size, mtime_ns, ctime_ns), None when absent; called
        only for a look). False when no such put is followed, or while it is being read."""
        with self._lock:
            held = self._in_flight.get((target, source, path))
        if held is None or held[1] == LOOKING:
            return False
        if held[1] in (PENDING, NOTHING):
            return True
        return current() == held[1]

    def own_shipped(self, target: str, source: str, path: str,
                    current: Callable[[], Look | None]) -> bool:
        """Whether what `target` has shipped at `path` is its first copy of the source file
        as it is now (`current`, as own_landing)."""
        look = self._acked.get((target, source, path))
        return look is not None and current() == look
