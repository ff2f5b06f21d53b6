"""Whether the directory a watcher watches still stands at the source root's path.

Some ways of losing the root raise no event on what a watcher holds: fanotify reports
no unmount at all, and inotify's watch on the root says nothing when a file system is
mounted over the root, when a bind-mounted root is unmounted (the directory it covered
shows again), or when a directory above the root is renamed (the path leads elsewhere
or nowhere). Both watchers therefore compare the root's (st_dev, st_ino), learnt at
start, with what the path shows now, every `every` seconds: one stat(2).
"""

from __future__ import annotations

import os
from typing import Callable


class RootIdentity:
    """The (st_dev, st_ino) of `root` learnt at start, checked on `clock` (monotonic
    seconds) every `every` seconds until it differs once."""

    def __init__(self, root: str, clock: Callable[[], float], every: float = 1.0):
        self.root, self.clock, self.every = root, clock, every
        self.known: tuple[int, int] | None = None
        self.next_check = 0.0
        self.gone = False

    def learn(self, st: os.stat_result | None = None) -> None:
        """Take `st` (or a stat of the root now; OSError propagates) as the root's identity."""
        st = st if st is not None else os.stat(self.root)
        self.known = (st.st_dev, st.st_ino)
        self.next_check = self.clock() + self.every

    def next_deadline(self) -> float | None:
        """When the next check is due (monotonic seconds); None before learn() and once gone."""
        return None if self.known is None or self.gone else self.next_check

    def moved_off(self) -> bool:
        """True, once, when a check is due and the path no longer shows the directory
        learnt (another file system, another inode, or nothing there); no check after."""
        now = self.clock()
        if self.known is None or self.gone or now < self.next_check:
            return False
        self.next_check = now + self.every
        try:
            st = os.stat(self.root)
            self.gone = (st.st_dev, st.st_ino) != self.known
        except OSError:
            self.gone = True
        return self.gone
