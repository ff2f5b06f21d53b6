"""Drop the kept versions an exchange of two files made redundant (keep_deleted).

`mv --exchange a b` (renameat2 RENAME_EXCHANGE) reaches the targets as two puts, each over
the other name's old bytes: the first put has to keep what it overwrites (those bytes are
on the target nowhere else yet), and so does the second by the same rule, though after
both the target holds every byte it held before. `mirrord trash` listed both names as
'overwritten' and `undelete` put a duplicate back. Skipping the first keep would leave a
kill -9 between the two puts with those bytes neither kept nor at the other name, so the
puts keep as always, and once the later one is done, the versions they kept are dropped
only where the target now holds each at the other name (or at its own name again):
same size and mtime to the nanosecond (the mirror's own "same version", compare.py) and
the same SHA-256 of the bytes (same_bytes), kept since the oldest change the put's
journal row held (bound()). A crash before the drop leaves an extra kept version, never
a lost one.

The journal names the other end (SyncItem.moved_to: a put recorded over the pending
delete of a name whose bytes were renamed away, journal EnqueueMixin._went_to); the
Shipper calls settle() after every batch a keeping target took, for the live stream,
the catch-up and reconcile alike. Best effort: a failure is logged, never fails the put.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence

from mirrord.errors import ChangedWhileSent
from mirrord.logsetup import kv
from mirrord.targets.base import Target
from mirrord.targets.model import Entry, SyncItem, SyncResult
from mirrord.targets.mtime import exact_ns
from mirrord.trash.model import OVERWRITTEN, Kept, stamp_time
from mirrord.treewalk import file_digest

log = logging.getLogger("mirrord.trash")


def settle(target: Target, results: Sequence[SyncResult]) -> None:
    """After target.sync() and the worker's check that each file did not change while
    it was sent (ship_rules.unchanged): for each put whose item names where the bytes it
    overwrote went (SyncItem.moved_to), drop the kept versions both names now hold at the
    other one (redundant()). A put that changed while sent (ChangedWhileSent) is no
    holder: what its name holds may not be what its checksum says (an S3 put reads the
    file for its sha256 before it sends the body), but the versions kept at its name that
    the other name holds still go; its retry, recorded over by the write's event, names
    no other name any more, and they stayed kept for good (a review, helper-139).
    Never raises."""
    for res in results:
        item = res.item
        torn = isinstance(res.error, ChangedWhileSent)
        if ((res.error is not None and not torn) or item.kind != "file" or item.meta_only
                or not item.moved_to):
            continue
        try:
            doomed = redundant(target, item, sent_whole=not torn)
            if doomed:
                target.trash_purge(doomed)
        except Exception as exc:  # noqa: BLE001 - best effort: an extra kept version stays
            log.warning(kv(msg="cannot drop the versions an exchange kept; they stay listed "
                               "in the trash until retention purges them", target=target.name,
                           path=item.path, other=item.moved_to, error=exc))


def redundant(target: Target, item: SyncItem, *, sent_whole: bool = True) -> list[Kept]:
    """The versions kept at `item.path` or `item.moved_to` ('overwritten', stamped at
    bound(item), whole second, or later) that the target holds right now at the other
    name, or at their own name again: files at both names, equal size and exact mtime,
    and the very bytes (same_bytes). Their own name: an exchange whose move was in flight
    (`mv --exchange a c`, the move a -> c claimed before the rest was read) brought a's
    bytes to c, and the put of c that followed it, recorded a second later, kept them
    there under its own stamp while putting the very same bytes back (within one second
    the two keeps share a stamp and the first one stands). Raises what the target's stat,
    checksum, trash_list and trash_fetch raise. `sent_whole` False (the put changed while
    it was sent): `item.path` holds nothing that counts, so only versions kept at it that
    `item.moved_to` holds go."""
    here = target.stat(item.path)
    there = target.stat(item.moved_to)
    if not _file(here) or not _file(there):
        return []
    since = int(bound(item))   # a versioned bucket stamps by LastModified: whole seconds
    out: list[Kept] = []
    pairs = [(item.path, ((there, item.moved_to), (here, item.path))),
             (item.moved_to, ((here, item.path), (there, item.moved_to)))]
    if not sent_whole:
        pairs = [(item.path, ((there, item.moved_to),))]
    for name, holders in pairs:
        # the bound reaches the target: it reads the versions kept since the change, not its
        # whole trash (an S3 'copy' trash would be LISTed whole for every exchange's put)
        out += [k for k in target.trash_list(name, since=since)
                if k.path == name and k.why == OVERWRITTEN and since_ok(k, since)
                and any(holds(entry, k) and same_bytes(target, k, path)
                        for entry, path in holders)]
    return out


LOOK_BACK = 3600.0   # seconds: how far before a put's change bound() reaches at most


def bound(item: SyncItem) -> float:
    """The earliest time (seconds since the epoch) a version made redundant by `item` can
    be stamped at: that of the oldest change its journal row held (SyncItem.first_when),
    else of its newest (`when`). Another name's put may have kept it before this change
    came: `mv a t; mv c a; mv t c` compared mid-way by a reconcile pass, whose put of a
    (proposed during its walk) kept a's bytes, and whose delete of c (proposed after the
    walk; the put of c it becomes names a) came in the next second: bounded by `when`,
    a's bytes stayed kept while c held them (tests/integration/
    test_exchange_then_proposals_keep_nothing.py failed so 1 run in 10). At most
    LOOK_BACK before `when`: a row rewritten faster than it ships, or a delete held by the
    alarm for days, keeps its first change's time, and each exchange's put would read
    every version kept since (S3 'copy' mode lists the whole trash from the bound on:
    a review, helper-138). Older parts leave an extra kept version, never a lost one."""
    first = min(item.first_when, item.when) if item.first_when else item.when
    return max(first, item.when - LOOK_BACK)


def holds(entry: Entry | None, kept: Kept) -> bool:
    """Whether `entry` (what a target holds at a name now) is the version `kept`: a file of
    the same size and mtime to the nanosecond, the mirror's own "same version" (compare.py).
    The one rule both swaps and moved_trees drop a kept version by."""
    return (_file(entry) and entry is not None and entry.size == kept.size
            and exact_ns(entry.mtime, entry.mtime_ns) == kept.mtime_ns)


def same_bytes(target: Target, kept: Kept, path: str, keeper: Target | None = None) -> bool:
    """Whether the file the target holds at `path` is the very bytes of `kept`: its
    Target.checksum (SHA-256, treewalk.file_digest) equals the digest of the kept bytes
    (fetched with trash_fetch into a temp file). False when the target has no checksum for
    it. Asked after holds(): size and mtime alone are no proof that a kept version is
    redundant. Files extracted from one archive, or rewritten with `touch -r`, share them
    with other bytes, and a breaker saw a rotation drop a kept version whose bytes were
    nowhere else any more. `keeper`: the target keeping `kept` when another one does
    (default `target`). Raises what checksum and trash_fetch raise."""
    want = target.checksum(path)
    return want is not None and kept_digest(target if keeper is None else keeper, kept) == want


def kept_digest(target: Target, kept: Kept) -> str:
    """SHA-256 (hex, treewalk.file_digest) of the kept bytes of `kept`, fetched from
    `target` with trash_fetch into a temp file removed after. Raises what trash_fetch
    raises."""
    with tempfile.NamedTemporaryFile(prefix="mirrord-kept-") as tmp:
        target.trash_fetch(kept, tmp.name)
        return file_digest(tmp.name)


def _file(entry: Entry | None) -> bool:
    return entry is not None and not entry.is_dir


def since_ok(kept: Kept, since: float) -> bool:
    """Whether `kept` was stamped at `since` (seconds) or later: the rule itself, also for
    a target that lists more than since= asked."""
    try:
        return stamp_time(kept.stamp) >= since
    except ValueError:
        return False
