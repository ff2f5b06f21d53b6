"""Whether the directory a watcher watches still stands at the source root's path.

Some ways of losing the root raise no event on what a watcher holds: fanotify reports
no unmount at all, and inotify's watch on the root says nothing when a file system is
mounted over the root, when a bind-mounted root is unmounted (the directory it covered
shows again), or when a directory above the root is renamed (the path leads elsewhere
or nowhere). Both watchers therefore compare the root's (st_dev, st_ino), learnt at
start, with what the path shows now, every `every` seconds: one stat(2).

The check runs on the daemon's main loop, so the stat is made on a thread of its own
and waited for at most STAT_WAIT seconds: a root on an NFS server that stopped
answering (a hard mount blocks stat(2) until it is back) must not stop the loop, and
with it the other sources, the heartbeats and the systemd watchdog. A stat still
hanging at the next check is waited for again, never asked twice.

It is also where a watcher records that its root is lost, whichever way it learnt it
(an event on the root's own watch, the filesystem mark gone, the identity check):
`report_lost` appends the one "lost" event, and nothing is checked or reported after.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

from mirrord.watch.events import FsEvent

STAT_WAIT = 0.05   # seconds a check waits for the root's stat(2)


class _Stat:
    """One stat(2) of `path` on a daemon thread (it never holds up the process's exit)."""

    def __init__(self, stat: Callable[[str], os.stat_result], path: str):
        self.done = threading.Event()
        self.seen: tuple[int, int] | None = None
        threading.Thread(target=self._run, args=(stat, path), name="root-stat",
                         daemon=True).start()

    def _run(self, stat: Callable[[str], os.stat_result], path: str) -> None:
        try:
            st = stat(path)
            self.seen = (st.st_dev, st.st_ino)
        except OSError:
            self.seen = None
        self.done.set()


class RootIdentity:
    """The (st_dev, st_ino) of `root` learnt at start, checked on `clock` (monotonic
    seconds) every `every` seconds until the root is lost; `stat` is os.stat (tests give
    one that hangs). `lost`: the watcher reported its root lost (report_lost)."""

    def __init__(self, root: str, clock: Callable[[], float], every: float = 1.0,
                 stat: Callable[[str], os.stat_result] = os.stat):
        self.root, self.clock, self.every, self.stat = root, clock, every, stat
        self.known: tuple[int, int] | None = None
        self.next_check = 0.0
        self.lost = False
        self._asked: _Stat | None = None

    def learn(self, st: os.stat_result | None = None) -> None:
        """Take `st` (or a stat of the root now; OSError propagates) as the root's identity."""
        st = st if st is not None else os.stat(self.root)
        self.known = (st.st_dev, st.st_ino)
        self.next_check = self.clock() + self.every

    def next_deadline(self) -> float | None:
        """When the next check is due (monotonic seconds); None before learn() and once lost."""
        return None if self.known is None or self.lost else self.next_check

    def check(self, how: str, out: list[FsEvent]) -> None:
        """Report the root lost (report_lost, with `how`) when moved_off()."""
        if self.moved_off():
            self.report_lost(how, out)

    def report_lost(self, how: str, out: list[FsEvent]) -> None:
        """Append to `out` the one "lost" event of this root (detail: it was `how`, e.g.
        "deleted"); nothing when it was reported already."""
        if not self.lost:
            self.lost = True
            out.append(FsEvent("lost", "", detail=f"the source root (or a directory above "
                               f"it) was {how}"))

    def moved_off(self) -> bool:
        """True when a check is due and the path no longer shows the directory learnt
        (another file system, another inode, or nothing there); False once lost, and
        while the stat has not answered within STAT_WAIT seconds."""
        now = self.clock()
        if self.known is None or self.lost or now < self.next_check:
            return False
        self.next_check = now + self.every
        if self._asked is None:
            self._asked = _Stat(self.stat, self.root)
        if not self._asked.done.wait(STAT_WAIT):
            return False
        seen, self._asked = self._asked.seen, None
        return seen != self.known
