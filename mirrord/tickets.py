"""Tickets: the journal rows someone waits for, resolved from the journal.

A Ticket names rows of one target (a reconcile pass's repairs, then its
deletes). The proposer registers changes on it before they are recorded; once
the journal's owner has recorded them (mirrord.pipeline.Pipeline.record) each is
resolved from its row: done (the row is gone: acked), failed (tried
MAX_ATTEMPTS times, or put off by a permanent error, past GIVE_UP_BACKOFF, or held:
a held delete, or waiting behind one, which nothing ships before resume-deletes),
or still pending when the waiter gives up. Thread-safe: a pass on the daemon's
scanner thread waits on a ticket the main thread resolves.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Iterable

from mirrord.errors import cause_of
from mirrord.journal import Change, RowState

MAX_ATTEMPTS = 3         # failed attempts after which a waited-for row counts as not repaired
GIVE_UP_BACKOFF = 30.0   # seconds: a row put off longer than this (a permanent error) has failed

Key = tuple[str, bytes]   # (source, path bytes)


class Ticket:
    """The rows of one target someone waits for; safe to share between two threads."""

    def __init__(self, target: str):
        self.target = target
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: dict[Key, tuple[str, int, bool]] = {}   # -> (kind, size, recorded)
        self.done = 0
        self.bytes = 0          # bytes of the puts done
        self.failed: list[str] = []
        # per failed[i]: (cause: why without the path, errors.cause_of; 'kind path'; why)
        self.causes: list[tuple[str, str, str]] = []
        self.failed_deletes = 0

    def propose(self, changes: Iterable[Change]) -> None:
        """Register changes about to be handed to the journal's owner (not yet recorded)."""
        with self._lock:
            for ch in changes:
                if ch.targets is None or self.target in ch.targets:
                    self._pending[(ch.source, os.fsencode(ch.path))] = (ch.kind, ch.size, False)

    def recorded(self, changes: Iterable[Change]) -> None:
        """The changes are in the journal: from now on their rows are looked up."""
        with self._lock:
            for ch in changes:
                key = (ch.source, os.fsencode(ch.path))
                if key in self._pending:
                    kind, size, _ = self._pending[key]
                    self._pending[key] = (kind, size, True)

    def lost(self, changes: Iterable[Change], why: str) -> None:
        """The changes were dropped before the journal took them."""
        with self._changed:
            for ch in changes:
                self._fail((ch.source, os.fsencode(ch.path)), why)
            self._changed.notify_all()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def settled(self) -> bool:
        with self._lock:
            return not self._pending

    def recorded_keys(self) -> dict[str, list[bytes]]:
        """Per source, the paths recorded and not yet resolved."""
        out: dict[str, list[bytes]] = {}
        with self._lock:
            for (source, path), (_kind, _size, rec) in self._pending.items():
                if rec:
                    out.setdefault(source, []).append(path)
        return out

    def resolve(self, source: str, states: dict[bytes, RowState], paths: list[bytes], *,
                now: float) -> None:
        """Settle each of `paths` from its row (`states`; absent: acked, so done)."""
        with self._changed:
            for path in paths:
                key = (source, path)
                if key not in self._pending:
                    continue
                row = states.get(path)
                if row is None:
                    kind, size, _ = self._pending.pop(key)
                    self.done += 1
                    self.bytes += size if kind == "put" else 0
                elif row.held is not None and not row.claimed:
                    self._fail(key, f"waits behind the held deletes of source {row.held!r} "
                                    f"(left in the journal: shipped after `mirrord "
                                    f"resume-deletes --source {row.held}`)")
                elif not row.claimed and (row.attempts >= MAX_ATTEMPTS or (
                        row.attempts and row.next_try - now > GIVE_UP_BACKOFF)):
                    self._fail(key, f"{row.last_error or 'failed'} (left in the journal for retry)")
            self._changed.notify_all()

    def give_up(self, why: str) -> None:
        """Count every row still pending as failed (the waiter stops waiting)."""
        with self._changed:
            for key in list(self._pending):
                self._fail(key, why)
            self._changed.notify_all()

    def wait(self, timeout: float | None, stop: threading.Event | None = None) -> bool:
        """From another thread: block until every row settled (True), `timeout` seconds
        passed or `stop` was set (False; the rows stay pending)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._pending:
                if stop is not None and stop.is_set():
                    return False
                left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def _fail(self, key: Key, why: str) -> None:
        kind, _size, _rec = self._pending.pop(key, ("put", 0, False))
        path = os.fsdecode(key[1])
        self.failed.append(f"{kind} {path!r}: {why}")
        self.causes.append((cause_of(why, path), f"{kind} {path!r}", why))
        self.failed_deletes += kind == "delete"
