"""How long a watcher has read without finding its kernel event queue empty.

The journal's backlog counts what a watcher has read; it cannot count what still waits
in the kernel's queue. A watcher that reads behind the file system's writes (a fanotify
file-system mark on a volume where something outside the source root writes tens of
thousands of files, or a burst larger than one loop turn handles) leaves `pending 0`
in the journal while changes of the root sit unread, and the targets would read
`in_sync` (a session's note: 90 s of an outside writer's events ahead of the root's
exchanges while status said pending 0). A watcher that keeps up finds its queue empty
on most reads: one that has not for seconds is behind, and mirrord.target_state says so.

Both backends keep one `ReadLag` (`watcher.read_lag`) and call `drained()` when a read
found the queue empty (inotify: no event left in its backlog; fanotify: read(2) said
EAGAIN or copied less than a full buffer, fanotify_read() in
fs/notify/fanotify/fanotify_user.c stops only then or when the next event does not fit)
and `left_unread()` when a read() call ended with events still queued (its time or
read budget spent). `drained()` is told the wall time the kernel was read at (taken before
the read): every change whose syscall ended before it was in what was read, and
mirrord.watched_through bounds the catch-up's ctime comparison by it.
"""

from __future__ import annotations

import time
from typing import Callable


class ReadLag:
    """`seconds()`: seconds (float, >= 0) since the watcher last found its kernel event
    queue empty, 0.0 when its latest read did. `clock`: monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], int] = time.time_ns):
        self.clock, self.wall = clock, wall
        self.since: float | None = None     # clock() of the first read that left events
        self.drained_at_ns: int | None = None   # wall ns of the kernel read found empty

    def drained(self, read_at_ns: int | None = None) -> None:
        """The latest read found the queue empty; `read_at_ns`: the wall time (ns since the
        epoch) taken before that read of the kernel (default: now)."""
        self.since = None
        self.drained_at_ns = self.wall() if read_at_ns is None else read_at_ns

    def left_unread(self) -> None:
        """The latest read() call ended with events still queued."""
        if self.since is None:
            self.since = self.clock()

    def seconds(self) -> float:
        """Seconds the queue has not been found empty (0.0: it was at the latest read)."""
        return 0.0 if self.since is None else max(0.0, self.clock() - self.since)
