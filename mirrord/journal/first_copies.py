"""The versions this process's workers sent, as they saw them: so that the mass-change
alarm does not count a write that destroyed nothing a target held (the write that made
the file, an append to it) as an overwrite of the copy sent of it.

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

A file written by appends (a script that opens, appends and closes it chunk by chunk, a
log) made the same mistake once per chunk: 40 new files of 15 chunks each counted 550.

So this remembers, per (target, source, path), what the put this process has in flight
there sends, and after its ack the version the target holds:
- in flight (registered by the shipper as it hands the op to a worker, updated by the
  worker): not looked at yet (the worker reads the file after the write: it sends that
  version or a later one), looking (the read under way: waited for, up to LOOK_WAIT;
  still under way then, counted), the worker's look (size, mtime_ns, ctime_ns) with a
  sample of its bytes (mirrord.appends), or nothing sent (the file was open for writing,
  gone, a directory: no version lands);
- acked: that look and sample, and whether the write that made the version destroyed
  nothing the target held: no `shipped` row when its ack was recorded (the first copy),
  or the worker found the version kept before it at the head of the file (an append);
  else the `shipped` row it replaced (size, mtime_ns, and that row's version number
  here), and the alarm takes it as made harmlessly once it counted an overwrite of that
  very row (mirrord.alarm_replaced: the write that made it was counted, so what extends
  it destroys nothing more); and a version number, new with each version acked (the same
  look sent again keeps it), so a version restored with the size and mtime of one
  counted before (`cp -p`, `rsync -t`, `tar x`; an encryptor keeping timestamps) is not
  taken for it (Journal.held_versions). A later ack replaces it, a delete or rename
  there forgets it.
A write then replaces nothing on that target while the source file is still exactly the
version landing, or acked and made harmlessly: the inode change time moves with every
write, truncate, chmod, link and rename and cannot be set back (stat(2), inode(7)). Nor
when the file only extends the version landing or acked: it is longer and the first and
last 4 KiB of that version's extent sample the same (mirrord.appends); nor when it holds
that version's very bytes, 8 KiB or less (sampled whole: appends.WHOLE), whatever its
mtime: coreutils `touch` seen live counted one overwrite a file (a trial, helper-161),
and such a version sent is made harmlessly too. An older version
landing, a version the target held before (a `shipped` row not made harmlessly), a change
since the look, a put of another process (`mirrord reconcile` while the daemon ships), a
look forgotten (memory only: MAX_LOOKS acked, the oldest first; a crash) all count as
before, the safe side.
Left, the unsafe side: a rewrite that keeps both ends of the old extent and grows the
file (mirrord.appends); a rewrite of the same size within one tick of the file system's
timestamp clock after the worker's look leaves size, mtime and ctime as they were and is
not counted, as mirrord.observe.changed_since cannot tell it. Kernels with multigrain
timestamps (6.13 on: ext4, xfs, btrfs, tmpfs) make the next change after a stat
fine-grained. No inode number is compared: a file renamed onto the path gets a new ctime.

A put the target stored whose file changed while it was sent (errors.ChangedWhileSent: not
recorded as shipped, sent again) leaves that version on the target with no `shipped` row:
it is kept apart as landed, not recorded, until an ack at the path replaces it, and a
write that destroys it counts (`landed`), as one destroying a shipped version does. A
catch-up's put landed so, the file then rewritten in place: the rewrite's event, read
after that answer, found nothing held and counted 0 (a CI run of
tests/e2e/test_alarm_slow_rewrite.py: 17 of 20). Its identity for the alarm's notes
(mirrord.alarm_replaced) is the first version landed so since the path's last ack (the
`base`): the writes that keep a put landing and failing so are one rewrite, counted once,
as a put in flight over a shipped version is (Journal.held_versions). That such a version
stands is the journal's to say (ops.landed, set in the answer's transaction, and by
Journal.release_claims for an op a crash cut short; cleared by the path's next op done,
whichever process does it): this keeps only what this process saw of it. Kept in memory
only, a restart forgot it (a rewrite after it counted 0 again), and an ack by `mirrord
reconcile` left it standing (a new file there counted 1).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Iterable

from mirrord.appends import WHOLE
from mirrord.journal.first_copies_ask import (  # noqa: F401 - the types, re-exported
    LOOKING, NOTHING, PENDING, AlarmQuestions, Counted, Extends, Key, Kept, Look, Row, Sent,
    _number)

if TYPE_CHECKING:
    from mirrord.journal.records import Op, Outcome
    from mirrord.observe import Observed

# the base of a version landed, not recorded, that this process kept nothing of (another
# process's put, one cut short by a crash: ops.landed): matches no version acked (sizes
# are >= 0, numbers > 0)
UNKNOWN_ROW: Row = (-1, -1, 0)

MAX_LOOKS = 16_384   # acked versions, ~5 MiB; a late event comes within a batch window
# seconds the alarm waits for a worker's look under way (observe: an open, two fstats, a
# lease, two preads; microseconds, longer only while the alarm's thread holds the GIL,
# which the wait releases); past it the put counts as landing an unknown version
LOOK_WAIT = 0.05

class FirstCopies(AlarmQuestions):
    """The puts in flight from this process's shipper, what each worker saw, and the acked
    first copies (bounded). `sending` and `settled` run on the journal's thread, `looking`
    and `looked` on workers, the alarm's lookups (first_copies_ask.AlarmQuestions) on the
    journal's thread: one lock."""

    def __init__(self, limit: int = MAX_LOOKS, look_wait: float = LOOK_WAIT):
        self.limit = limit
        self.look_wait = look_wait
        self._lock = threading.Lock()
        self._looked = threading.Condition(self._lock)   # a look under way finished
        self._in_flight: dict[Key, tuple[int, str | Sent]] = {}   # -> (op id, state or look)
        self._acked: OrderedDict[Key, Kept] = OrderedDict()   # the last version acked
        # a version landed, not recorded (ChangedWhileSent) since the last ack -> (the
        # latest such, the first such: its Row, the `base`)
        self._landed: OrderedDict[Key, tuple[Kept, Row]] = OrderedDict()
        self._numbers = itertools.count(1)   # version numbers (first_of: the ack's thread)

    # ------------------------------------------------------------ the shipper's side
    def sending(self, ops: Iterable[Op]) -> None:
        """`ops` (claimed) are handed to workers now; their files' puts are followed."""
        with self._lock:
            for op in ops:
                if op.kind == "put" and not op.is_dir:
                    self._in_flight[(op.target, op.source, op.path)] = (op.id, PENDING)

    def observed(self, op: Op, observe: Callable[..., Observed]) -> Observed:
        """`observe(sample=True, prefix=N)` (a worker's look at `op`'s file, mirrord.observe;
        N: the size of the version kept at its path, landed or acked, 0 when none), followed: looking
        while it runs, then what it found (nothing, when it raises; it propagates)."""
        self.looking(op)
        with self._lock:
            kept = self._held((op.target, op.source, op.path))
        seen = None
        try:
            seen = observe(sample=True, prefix=kept[0][0] if kept is not None and kept[1] else 0)
            return seen
        finally:
            self.looked(op, seen, kept[1] if kept is not None else b"")

    def looking(self, op: Op) -> None:
        """A worker reads `op`'s file now (before observe()); only an op sent through
        `sending` is followed."""
        self._set(op, LOOKING)

    def looked(self, op: Op, seen: Observed | None, kept_sample: bytes = b"") -> None:
        """What the worker found (`seen`, observe()'s answer; None: it raised, nothing is
        sent). A regular file is the version it sends (extending the kept version when
        its prefix_sample is `kept_sample`, or holding its very bytes when it is sampled
        whole, appends.WHOLE: a touch, helper-161); anything else sends no version."""
        if seen is not None and seen.kind == "file" and seen.ctime_ns:
            grown = bool(kept_sample) and (seen.prefix_sample == kept_sample or (
                seen.size <= WHOLE and seen.sample == kept_sample))
            self._set(op, ((seen.size, seen.mtime_ns, seen.ctime_ns), seen.sample, grown))
        else:
            self._set(op, NOTHING)

    def _set(self, op: Op, state: str | Sent) -> None:
        key = (op.target, op.source, op.path)
        with self._lock:
            held = self._in_flight.get(key)
            if held is not None and held[0] == op.id:
                self._in_flight[key] = (op.id, state)
                if held[1] == LOOKING:
                    self._looked.notify_all()

    # ------------------------------------------------------------ the ack's side
    def sent_look(self, op: Op) -> Sent | None:
        """The look (and sample) the worker of `op` sent, None when none (ask before the
        ack is recorded, then `settled`)."""
        with self._lock:
            held = self._in_flight.get((op.target, op.source, op.path))
        if held is None or held[0] != op.id or isinstance(held[1], str):
            return None
        return held[1]

    def first_of(self, out: Outcome, shipped: Callable[[Op], tuple | None],
                 landed_at: Callable[[Op], bool] = lambda op: True) -> Kept | None:
        """What `out`'s put sent, to keep once acked (or, `out.landed`, kept as landed, not
        recorded): its look, its sample, whether the write that made it destroyed nothing
        the target held: it is the target's first version of the file (no `shipped` row at
        its path before its ack is recorded, `shipped(op)`: (size, mtime_ns, ...) or None,
        a primary-key search, nor a version landed, not recorded), it only extends the
        version kept there, or it is exactly that kept version sent again, as that was made
        (an event of the write that made it, read while its put was in flight, ran the row
        once more); when not, the Row it replaces (the `shipped` row, else the landed
        base); and its version number (new, or the kept one's for the same look). None: no
        followed put done or landed. `landed_at(op)`: the journal still says a version
        landed, not recorded, at the path (ops.landed; asked only when one is kept here):
        when not, another process's op there was done since, and what is kept of it goes.
        A version landed that this process kept nothing of (a crash's, another process's)
        makes no version after it non-harmless: the write that destroys it is counted on
        its own (`landed`), and a first copy sent again after a `kill -9` counted each
        append to it as an overwrite."""
        if out.error is not None and not out.landed:
            return None
        if out.error is None and (out.shipped_kind != "put" or out.is_dir):
            return None
        sent = self.sent_look(out.op)
        if sent is None:
            return None
        op = out.op
        look, digest, grown = sent
        key = (op.target, op.source, op.path)
        with self._lock:
            acked, landed = self._acked.get(key), self._landed.get(key)
        if landed is not None and not landed_at(op):
            with self._lock:
                if self._landed.get(key) == landed:
                    del self._landed[key]
            landed = None
        kept = landed[0] if landed is not None else acked
        before = shipped(op)
        again = kept is not None and kept[0] == look
        number = kept[4] if again else next(self._numbers)
        if (before is None and landed is None) or grown:
            return (look, digest, True, None, number)
        if again:
            return (look, digest, kept[2], kept[3], number)
        if before is None:
            return (look, digest, False, landed[1], number)
        return (look, digest, False,
                (before[0], before[1], _number(acked, before[0], before[1])), number)

    def settled(self, out: Outcome, sent: Kept | None) -> None:
        """`out`'s ack is recorded: its put is no longer in flight. `sent` (first_of) is
        kept as what the target holds at the path now: acked, or `out.landed`, landed and
        not recorded (the first since the path's last ack is the base); else, the op done,
        what was kept for its path (and a move's old name) goes. Another failure changes
        nothing kept."""
        op = out.op
        key = (op.target, op.source, op.path)
        with self._lock:   # workers read _acked too (observed)
            held = self._in_flight.get(key)
            if held is not None and held[0] == op.id:
                del self._in_flight[key]
            if out.error is not None:
                if out.landed and sent is not None:
                    last = self._landed.get(key)
                    base = last[1] if last is not None else (sent[0][0], sent[0][1], sent[4])
                    _keep(self._landed, key, (sent, base), self.limit)
                return
            self._landed.pop(key, None)
            if sent is not None:
                _keep(self._acked, key, sent, self.limit)
                return
            self._acked.pop(key, None)
            if op.src is not None:
                self._acked.pop((op.target, op.source, op.src), None)
                self._landed.pop((op.target, op.source, op.src), None)

    def _held(self, key: Key) -> Kept | None:
        """The latest version kept at `key`: landed, not recorded, else acked (under
        the lock)."""
        landed = self._landed.get(key)
        return landed[0] if landed is not None else self._acked.get(key)


def _keep(kept: OrderedDict, key: Key, value: object, limit: int) -> None:
    """kept[key] = value as the newest, the oldest dropped past `limit` entries."""
    kept[key] = value
    kept.move_to_end(key)
    while len(kept) > limit:
        kept.popitem(last=False)
