"""The held versions the mass-change alarm has counted as replaced, so each counts once.

A write is an overwrite when a target holds a version at its path (mirrord.alarm_batch,
mirrord.journal.held_files). A file rewritten in place by a slow writer is reported more
than once before that version is replaced on the target: once per pause longer than the
watcher's quiet time (0.2 s, mirrord.watch.inotify: IN_MODIFY with no close yet) and at
its close. Each report found the same shipped version and counted it again: 20 files
rewritten in 3 writes 0.5 s apart counted 80, not 20 (measured by hand, inotify, one local
target), and 250 such rewrites reach alarm_deletes = 1000.

So the alarm remembers, per source and path, what the targets held there when it counted
an overwrite (Journal.held_versions: the `shipped` rows' size, mtime_ns, token and the
version number this process gave the version acked (mirrord.journal.first_copies), and
the puts or renames in flight by row id and claim). A later write that finds exactly the
same versions replaces nothing more. A version that changed (the new one acked, a put of
it claimed) counts again, and so does one acked since with the size and mtime of the one
counted (a file truncated by mistake, counted, restored with `cp -p`, then encrypted:
the encryption counted 0 on the same size, mtime and token; found by review). Memory
only, the newest MAX_PATHS paths: a restart, or more paths than that, counts once more
(the safe side). Left: versions this process does not know (number 0: shipped before it
started, by another process, or past first_copies.MAX_LOOKS) with the same size and
mtime are taken as one.

The same note tells mirrord.journal.first_copies that the version a target acked over a
counted one was made by a write counted already: a file shipped before the daemon
started, appended to (counted: no sample of that version was kept), then appended to
again, counted the second append too (1 each), as an overwrite of a version not known
to be made harmlessly.
"""

from __future__ import annotations

from collections import OrderedDict

MAX_PATHS = 65_536


class Replaced:
    """(source, path) -> the held versions counted as replaced there. Main thread only."""

    def __init__(self, limit: int = MAX_PATHS):
        self.limit = limit
        self._counted: OrderedDict[tuple[str, str], tuple] = OrderedDict()

    def already(self, source: str, path: str, held: tuple) -> bool:
        """Whether an overwrite of exactly `held` (Journal.held_versions) at `path` was
        counted already. An empty `held` (a version a rename not done yet brings there)
        is never taken as counted."""
        return bool(held) and self._counted.get((source, path)) == held

    def counted(self, source: str, path: str, held: tuple) -> None:
        """An overwrite of `held` at `path` was counted now."""
        key = (source, path)
        self._counted[key] = held
        self._counted.move_to_end(key)
        while len(self._counted) > self.limit:
            self._counted.popitem(last=False)

    def counted_version(self, source: str, path: str, target: str, size: int,
                        mtime_ns: int, number: int) -> bool:
        """Whether the overwrite last counted at `path` was of the version `target` had
        shipped there with `size` (bytes), `mtime_ns` and the version `number` this
        process gave it (Journal.held_versions; a put in flight there is no shipped
        version)."""
        return any(held[0] == target and held[3] != "in flight"
                   and (held[1], held[2], held[4]) == (size, mtime_ns, number)
                   for held in self._counted.get((source, path), ()))
