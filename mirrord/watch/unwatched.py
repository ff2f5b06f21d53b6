"""The directories inotify refused to watch, kept as state: when to retry each one and
when to ask for the next rescan of them all. Pure bookkeeping over an injected clock.

A directory whose inotify_add_watch(2) failed with ENOSPC (the per-user limit
fs.inotify.max_user_watches, inotify(7)), EACCES or another error is not forgotten
after one log line: it is retried with a doubling delay, at once when a watch is freed
or the limit is raised, and until then the daemon is asked every `rescan_every`
seconds to compare it with what was shipped.
"""

from __future__ import annotations

from typing import Callable, Hashable

LIMIT_FILE = "/proc/sys/fs/inotify/max_user_watches"


class Unwatched:
    """Keys (whatever identifies a directory to the caller) with their retry times.

    first, cap: the first retry delay and its ceiling, seconds (doubling in between);
    rescan_every: seconds between two rescan requests for the whole set."""

    def __init__(self, clock: Callable[[], float], *, first: float = 1.0, cap: float = 60.0,
                 rescan_every: float = 5.0, limit_file: str = LIMIT_FILE):
        self.clock = clock
        self.first = first
        self.cap = cap
        self.rescan_every = rescan_every
        self.limit_file = limit_file
        self.entries: dict[Hashable, list[float]] = {}    # key -> [next retry, delay]
        self.next_rescan: float | None = None
        self._limit_checked = float("-inf")
        self._limit: str | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.entries

    def add(self, key: Hashable) -> bool:
        """Record a failure of `key`; True the first time (the caller reports it once),
        False on a repeated failure (its delay doubles, up to `cap`)."""
        now = self.clock()
        entry = self.entries.get(key)
        if entry is None:
            self.entries[key] = [now + self.first, self.first]
            if self.next_rescan is None:
                self.next_rescan = now + self.rescan_every
                self._limit = self._read_limit()
                self._limit_checked = now
            return True
        entry[1] = min(entry[1] * 2, self.cap)
        entry[0] = now + entry[1]
        return False

    def discard(self, key: Hashable) -> None:
        self.entries.pop(key, None)
        if not self.entries:
            self.next_rescan = None

    def retry_all_now(self) -> None:
        """A watch was freed or the limit changed: every key is due at once."""
        now = self.clock()
        for entry in self.entries.values():
            entry[0] = now

    def due(self) -> list[Hashable]:
        """Keys whose retry time has come (first checking, at most once a second, whether
        max_user_watches changed: then every key is due)."""
        if not self.entries:
            return []
        now = self.clock()
        if now - self._limit_checked >= 1.0:
            self._limit_checked = now
            limit = self._read_limit()
            if limit != self._limit:
                self._limit = limit
                self.retry_all_now()
        return [key for key, (at, _d) in self.entries.items() if at <= now]

    def rescan_due(self) -> bool:
        """True once per `rescan_every` seconds while any key is left."""
        if self.next_rescan is None or self.clock() < self.next_rescan:
            return False
        self.next_rescan = self.clock() + self.rescan_every
        return True

    def next_deadline(self) -> float | None:
        """The earliest retry, rescan or limit check (monotonic seconds), None when empty."""
        if not self.entries:
            return None
        retry = min(at for at, _d in self.entries.values())
        return min(retry, self.next_rescan or retry, self._limit_checked + 1.0)

    def _read_limit(self) -> str | None:
        try:
            with open(self.limit_file) as fh:
                return fh.read().strip()
        except OSError:
            return None
