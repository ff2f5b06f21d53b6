"""Repairs that replace an entry of the other type: held until the comparison's deletes are decided.

On a target with directories (local, rsync) a file put where the target holds a
directory replaces the directory and everything below it, and a directory made (or a
file put below it) where the target holds a file replaces the file. A comparison (a
reconcile pass, mirrord.reconcile.engine; the catch-up, mirrord.catchup) proposes its
repairs as it merges and decides its deletes at the end: the removal of what such a
repair replaces is one of those deletes, counted against `[reconcile] max_delete`,
refused on an untrustworthy pass or while the source's deletes are held. Sent at once,
the repair removed it anyway (a breaker: `rm -rf big; echo x > big` while the daemon was
stopped, `max_delete = 5`: the pass said "refusing to delete 32 entries ... nothing
deleted", and the 30 files below `big/` were gone from the local and rsync mirrors; a
held source's reconcile waited for ever for its put, parked behind the held removal).

Both comparisons merge in mirrord.treewalk.entry_key order, where a directory `X` sorts
as `X/`, after the file name `X` and after names such as `X-1` or `X.bak` between them.
So a missing file's repair waits here (`file_repair`) until the merge passes `X/`
(`passed`); a directory extra at `X/`, or any extra below it (`extra`), makes it held
instead. What waits is the few names between `X` and `X/`; what a file extra holds is
every repair of the directory that replaces it, in memory until the end of the merge (about
260 bytes a repair: a file replaced by a directory of a million files holds ~260 MB). A file extra at
`X` holds every repair at or below `X/` that follows (`below_file`). Held repairs go out
only with the delete of the entry they replace (`release`): the comparison proposes that
delete, or keeps them back and says so. Not used for targets without directories (S3),
where a key `X` and keys below `X/` stand side by side.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class TypeSwaps(Generic[T]):
    """The repairs (any objects: Changes) of one comparison against one target that may
    replace an entry of the other type, keyed by entry_key bytes."""

    def __init__(self) -> None:
        self.waiting: deque[tuple[bytes, T]] = deque()   # file repairs, in merge order
        self.files: list[bytes] = []    # file extras whose name the source may hold as a dir
        self.held: dict[bytes, list[T]] = {}   # extra key -> the repairs that replace it

    def passed(self, key: bytes) -> list[T]:
        """The merge reached `key`: the waiting repairs whose name's directory key sorts
        before it, now known to replace nothing (send them)."""
        out: list[T] = []
        while self.waiting and self.waiting[0][0] + b"/" < key:
            out.append(self.waiting.popleft()[1])
        if self.files:
            self.files = [f for f in self.files if key <= f + b"/" or key.startswith(f + b"/")]
        return out

    def file_repair(self, key: bytes, item: T) -> None:
        """A repair of the file `key` the target lacks: it waits until the merge passes
        `key + b"/"` (passed) or a directory extra there holds it (extra)."""
        self.waiting.append((key, item))

    def extra(self, key: bytes, is_dir: bool) -> None:
        """An extra target entry at `key` (a directory's key ends in '/'). One at or below
        `X/` holds the waiting repair of the file X (bound to this key: it goes with this
        key's delete), also when the directory's own entry is missing from a record that
        names what lies below it. Call it before passed() for the same key."""
        for i, (k, item) in enumerate(self.waiting):
            if key.startswith(k + b"/"):
                del self.waiting[i]
                self.held.setdefault(key, []).append(item)
                break
        if not is_dir:
            self.files.append(key)

    def missing(self, key: bytes, item: T, is_dir: bool) -> bool:
        """A repair of what the target lacks at `key` (a directory: is_dir): True when it
        is held (below_file) or waits (file_repair, a file), False when it may go now. The
        one rule both comparisons apply."""
        if self.below_file(key, item):
            return True
        if not is_dir:
            self.file_repair(key, item)
            return True
        return False

    def below_file(self, key: bytes, item: T) -> bool:
        """Hold `item`, a repair at `key`, when `key` is a directory or lies below one
        whose name the target holds as a file extra; True when held."""
        for f in self.files:
            if key.startswith(f + b"/"):
                self.held.setdefault(f, []).append(item)
                return True
        return False

    def rest(self) -> list[T]:
        """At the end of the merge: every repair still waiting (nothing followed it)."""
        out = [item for _k, item in self.waiting]
        self.waiting.clear()
        return out

    def keep_rest(self) -> None:
        """At a merge cut short (a listing failed): what still waits cannot be told to
        replace nothing, so it is held with no delete to go with (release keeps it)."""
        rest = self.rest()
        if rest:
            self.held.setdefault(b"", []).extend(rest)

    def release(self, removed: set[bytes] | None) -> tuple[list[T], list[T]]:
        """(sent, kept): the held repairs whose replaced entry's key is in `removed` (its
        delete is proposed; None: every one is), and the others, which must not be sent."""
        sent: list[T] = []
        kept: list[T] = []
        for key, items in self.held.items():
            (sent if removed is None or key in removed else kept).extend(items)
        self.held.clear()
        return sent, kept
