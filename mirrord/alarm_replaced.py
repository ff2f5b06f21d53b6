"""The held versions the mass-change alarm has counted as replaced, so each counts once.

A write is an overwrite when a target holds a version at its path (mirrord.alarm_batch,
mirrord.journal.held_files). A file rewritten in place by a slow writer is reported more
than once before that version is replaced on the target: once per pause longer than the
watcher's quiet time (0.2 s, mirrord.watch.inotify: IN_MODIFY with no close yet) and at
its close. Each report found the same shipped version and counted it again: 20 files
rewritten in 3 writes 0.5 s apart counted 80, not 20 (measured by hand, inotify, one local
target), and 250 such rewrites reach alarm_deletes = 1000.

So the alarm remembers, per source and path, what the targets held there when it counted
an overwrite (Journal.held_versions: the `shipped` rows' size, mtime_ns and token, and the
puts or renames in flight by row id and claim). A later write that finds exactly the same
versions replaces nothing more. A version that changed (the new one acked, a put of it
claimed) counts again. Memory only, the newest MAX_PATHS paths: a restart, or more paths
than that, counts once more (the safe side).
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
