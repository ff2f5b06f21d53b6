"""Drop the versions a directory rename's fallback kept, once the target holds them at the
directory's new name (keep_deleted).

A directory rename the journal cannot keep as a move (work pending at either name:
journal enqueue_move) is a tree removal of the old name plus a re-send of the new one,
scanned later (daemon_scans.subtree). The removal keeps everything below the old name as
'directory removed', though the re-send puts those very bytes back at the new name:
`mv d1 x; mv d2 d1; mv x d2` (two directories of 20 files swapped) listed all 40 files in
`mirrord trash`, and a burst of such renames kept 1,540 versions and fired the mass-change
alarm. Not keeping them up front is no option: the re-send of each name waits for that
name's own tree removal (a barrier), so in a swap each removal's bytes reach their new
name only after the OTHER removal ran, and a removal that waited for its bytes to land
would wait for itself; and a kill -9 between an unkept removal and the re-send would lose
the bytes. So, as for file exchanges (mirrord.trash.swaps), the removal keeps as always
and the kept versions are dropped afterwards, each only where the target itself now holds
that version at new/rel: same size, mtime to the nanosecond (swaps.holds) and SHA-256
(swaps.same_bytes), kept under
the removal's stamp or later. A crash at any point leaves an extra kept version, never
none and no copy at the new name.

The journal names the new name on the removal's row (its src: SyncItem.moved_to, kept
through coalescing, journal EnqueueMixin). MovedTrees.settle() runs after every batch a
keeping target took (Shipper._sync): a removal done with moved_to settles its whole
subtree at once (the re-send may have landed already) and is remembered for SETTLE_FOR
seconds, during which each put that lands below its new name settles its own path.
Best effort: a failure is logged, never fails a put; memory only (a restart forgets
what it watched: extra kept versions stay, as before, until retention purges them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mirrord.logsetup import kv
from mirrord.targets.base import Target
from mirrord.targets.model import SyncItem, SyncResult
from mirrord.trash.model import DELETED, DIR_REMOVED, Kept
from mirrord.trash.swaps import holds, same_bytes, since_ok

log = logging.getLogger("mirrord.trash")

# How long (seconds) a removal's new name is watched for the puts of its re-send. The
# re-send is a scan queued when the rename is read, and its puts wait for the tree
# removals in their way (a barrier per name): minutes under a burst, seconds otherwise.
# Past it, what was kept stays kept (retention purges it): an extra version, never a loss.
SETTLE_FOR = 600.0
# At most this many removals watched per target: the oldest is forgotten first.
MAX_WATCHED = 1000
# A batch's puts below a new name at most this many: their old names' versions are listed
# one by one, else the old name's whole subtree once.
PER_PATH = 16


@dataclass(frozen=True)
class Moved:
    """A tree removal of `old` done on a target whose bytes went to `new` (target paths),
    kept under stamps of `since` (whole seconds) or later; watched until `until`."""

    old: str
    new: str
    since: int
    until: float


class MovedTrees:
    """The removals one Shipper watches, per target name; thread-safe (workers settle
    their own batches). `clock`: monotonic seconds (tests pass their own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        # one settle at a time: two workers dropping one kept version made the second's
        # purge fail (the first had taken it) and leave the rest of its batch kept
        self._settling = threading.Lock()
        self._open: dict[str, list[Moved]] = {}

    def settle(self, target: Target, results: Sequence[SyncResult]) -> None:
        """After target.sync(results' items): remember each tree removal done with a new
        name and drop what it kept that the target holds at the new name now; for each put
        done below a watched new name, drop the version kept at its old name that it holds.
        Never raises (a failure is logged: the kept versions stay)."""
        done = [res.item for res in results if res.error is None]
        now = self.clock()
        for item in done:
            if is_moved_tree(item):
                moved = Moved(item.path, item.moved_to, int(item.when), now + SETTLE_FOR)
                self._watch(target.name, moved)
                self._guarded(target, moved, None)
        puts = [item.path for item in done if item.kind == "file" and not item.meta_only]
        if not puts:
            return
        for moved in self.watched(target.name):
            rels = {p[len(moved.new) + 1:] for p in puts if p.startswith(moved.new + "/")}
            if rels:
                self._guarded(target, moved, rels)

    def watched(self, target: str) -> list[Moved]:
        """The removals still watched on `target` (expired ones are forgotten here)."""
        now = self.clock()
        with self._lock:
            live = [m for m in self._open.get(target, []) if m.until > now]
            self._open[target] = live
            return list(live)

    def _watch(self, target: str, moved: Moved) -> None:
        with self._lock:
            rows = [m for m in self._open.get(target, []) if m.old != moved.old]
            self._open[target] = (rows + [moved])[-MAX_WATCHED:]

    def _unwatch(self, target: str, moved: Moved) -> None:
        with self._lock:
            self._open[target] = [m for m in self._open.get(target, []) if m != moved]

    def _guarded(self, target: Target, moved: Moved, rels: set[str] | None) -> None:
        try:
            with self._settling:
                kept = kept_below(target, moved, rels)
                doomed = redundant(target, moved, kept)
                if doomed:
                    target.trash_purge(doomed)
            if rels is None and len(doomed) == len(kept):
                self._unwatch(target.name, moved)   # nothing of it left kept: no more puts asked
            log.debug(kv(msg="dropped what a directory rename kept", target=target.name,
                         path=moved.old, new=moved.new, versions=len(doomed)))
        except Exception as exc:  # noqa: BLE001 - best effort: an extra kept version stays
            log.warning(kv(msg="cannot drop the versions a directory rename kept; they stay "
                               "listed in the trash until retention purges them",
                           target=target.name, path=moved.old, new=moved.new, error=exc))


def is_moved_tree(item: SyncItem) -> bool:
    """Whether `item` is a tree removal whose bytes went to another name (moved_to)."""
    return (item.tree and bool(item.moved_to) and item.kind != "file"
            and item.moved_to != item.path
            and not item.moved_to.startswith(item.path + "/")
            and not item.path.startswith(item.moved_to + "/"))


def kept_below(target: Target, moved: Moved, rels: set[str] | None = None) -> list[Kept]:
    """The versions kept below `moved.old` by its removal: 'directory removed' (or
    'deleted', as a versioned S3 bucket lists them), stamped at `moved.since` or later;
    only old/rel for each rel in `rels` when given (then listed path by path when they are
    few: a versioned bucket reads each listed version's metadata). Raises what the
    target's trash_list raises."""
    prefix = moved.old + "/"
    if rels is not None and len(rels) <= PER_PATH:
        listed = [k for rel in sorted(rels)
                  for k in target.trash_list(prefix + rel, since=moved.since)
                  if k.path == prefix + rel]
    else:
        listed = list(target.trash_list(moved.old, since=moved.since))
    return [k for k in listed
            if k.path.startswith(prefix) and k.why in (DIR_REMOVED, DELETED)
            and since_ok(k, moved.since)
            and (rels is None or k.path[len(prefix):] in rels)]


def redundant(target: Target, moved: Moved, kept: Sequence[Kept]) -> list[Kept]:
    """Those of `kept` (kept_below) that the target holds right now at moved.new/rel, rel
    being the version's path below moved.old (swaps.holds: same size and mtime to the ns;
    then swaps.same_bytes: the same SHA-256, as a chain of renames can leave other bytes
    of the same size and mtime at the name the journal's hint gives).
    One Target.stat per path, not a listing: a listing may carry the server's time, not
    the file's (S3). Raises what the target's stat, checksum and trash_fetch raise."""
    prefix = moved.old + "/"
    there = {}
    for rel in {k.path[len(prefix):] for k in kept}:
        there[rel] = target.stat(f"{moved.new}/{rel}")
    return [k for k in kept if holds(there[k.path[len(prefix):]], k)
            and same_bytes(target, k, f"{moved.new}/{k.path[len(prefix):]}")]
