"""The first copies comparisons sent: files a target did not have when a catch-up or a
reconcile pass looked, so that the mass-change alarm does not count the live write of that
same version as an overwrite of the copy the comparison sent.

A comparison can find a file before the watcher's event of the write that made it is read:
`mirrord undelete --to-source` restored 8 files while the start's reconcile pass listed the
source; the pass proposed the files its target lacked, their puts went out, and the events
read a few milliseconds later found each file in flight (or shipped) on that target and
counted an overwrite of it (a CI run of tests/e2e/test_alarm_counted_once.py: 21 for 20;
23 with debug logging). The version in flight was the write's own: nothing was replaced.

So a comparison's put of a file the target lacked (Change.first_copy) leaves here what the
comparison saw (mirrord.journal.proposals.Seen: size, mtime_ns, ctime_ns). A write counted
later at that path is the same version when the source file is still exactly that: the
inode change time moves with every write, truncate, chmod, link and rename and no caller
can set it back (stat(2), inode(7)), so an equal one means no change since the look. That
target then holds nothing older at the path (mirrord.journal.held_files.shipped_file leaves
it out). Any change since counts as before, as does every other target.

No look is kept when the target holds a version at record time (a `shipped` row: the
live stream's put of an older version acked after the comparison read `shipped` or listed
the target; that version is replaced and counts) or when the proposal is recorded over a
put in flight (that put may carry an older version). Left as before, the safe side (one
count too many): a comparison run by another process (the `mirrord reconcile` command
while the daemon ships) and a look forgotten (memory only, at most MAX_LOOKS, the oldest
first: a crash or a walk of more files than that loses them).
Left, the unsafe side: a rewrite of the same size within one tick of the file system's
timestamp clock after the comparison's look, the copy it sent landed in between, leaves
size, mtime and ctime as they were and is not counted (as mirrord.observe.changed_since
cannot tell it). Kernels with multigrain timestamps (6.13 on: ext4, xfs, btrfs, tmpfs)
make the next change after a stat fine-grained; coarse-clock file systems do not. No
inode number is compared: another file renamed onto the path gets a new ctime then.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from mirrord.journal.proposals import Seen

MAX_LOOKS = 16_384   # ~4 MiB; a late event comes within a batch window, not a whole walk later

Look = tuple[int, int, int]   # (size, mtime_ns, ctime_ns) of a source file


class FirstCopies:
    """What comparisons saw of the files they proposed as first copies, per (target,
    source, path): bounded, the oldest forgotten first. Used on the journal's thread."""

    def __init__(self, limit: int = MAX_LOOKS):
        self.limit = limit
        self._looks: OrderedDict[tuple[str, str, bytes], Look] = OrderedDict()

    def note(self, target: str, source: str, path: bytes, seen: Seen) -> None:
        """A first copy of `path` (bytes, source-relative) recorded for `target`, the file as
        the comparison saw it. A look without an inode change time (0) is not kept."""
        key = (target, source, path)
        if not seen.ctime_ns:
            self._looks.pop(key, None)
            return
        self._looks[key] = (seen.size, seen.mtime_ns, seen.ctime_ns)
        self._looks.move_to_end(key)
        while len(self._looks) > self.limit:
            self._looks.popitem(last=False)

    def forget(self, target: str, source: str, path: bytes) -> None:
        """Another change recorded at `path` for `target` over a put in flight: that put may
        carry an older version, so the look no longer speaks for what the target holds."""
        self._looks.pop((target, source, path), None)

    def any(self, source: str, path: bytes, targets: tuple[str, ...]) -> bool:
        """Whether a look is kept for `path` on one of `targets` (a dict lookup each)."""
        return any((t, source, path) in self._looks for t in targets)

    def same_version(self, target: str, source: str, path: bytes,
                     current: Callable[[], Look | None]) -> bool:
        """Whether what the source holds at `path` now (`current()`: (size, mtime_ns,
        ctime_ns), None when nothing is there) is the version a comparison sent `target` as
        its first copy. `current` is called only when a look is kept."""
        look = self._looks.get((target, source, path))
        return look is not None and current() == look
