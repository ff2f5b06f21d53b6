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
read budget spent).
"""

from __future__ import annotations

import time
from typing import Callable


class ReadLag:
    """`seconds()`: seconds (float, >= 0) since the watcher last found its kernel event
    queue empty, 0.0 when its latest read did. `clock`: monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.since: float | None = None     # clock() of the first read that left events

    def drained(self) -> None:
        """The latest read found the queue empty."""
        self.since = None

    def left_unread(self) -> None:
        """The latest read() call ended with events still queued."""
        if self.since is None:
            self.since = self.clock()

    def seconds(self) -> float:
        """Seconds the queue has not been found empty (0.0: it was at the latest read)."""
        return 0.0 if self.since is None else max(0.0, self.clock() - self.since)
