"""Up to when each source's changes are known to the journal: the catch-up's bound for
changes that keep a file's size, mtime and mode.

A catch-up (mirrord.catchup) compares size, mtime and mode with what was shipped. A file
rewritten while the daemon was stopped, its length kept and its mtime put back (os.utime,
`touch -d`, a `cp -p` or `rsync -a` of a same-size copy over it, a restore from a backup,
ransomware that covers its tracks), passed as shipped, and the targets kept the old bytes
until a `reconcile --checksum`. Its inode change time cannot be put back: write(2),
truncate(2), utime(2), chmod(2), link(2) and rename(2) all set ctime to the current time
(inode(7), "Last status change timestamp"; only a change of the clock moves it otherwise).

So the daemon records, per source, a time up to which every change of it has been read
from the kernel and written to the journal: `watched through`, in nanoseconds since the
epoch, in the state database (kv `watched_through`). A catch-up after which changes may
have gone unread (at start, a root back, an overflow, a failed read, changes dropped by
an unwritable journal: daemon_scans.UNREAD) proposes a put of every file whose ctime is
later, even where size, mtime and mode match; the others (the walk for hard links' other
names, a resume) do not, or they would send the latest live changes twice. The put ships the bytes
only where they differ from the target's (mirrord.trash: the same bytes keep nothing).

The bound moves forward (`advance`: each heartbeat, and once more at a clean stop) only
while nothing of the source can have been missed: its watcher found the kernel's queue
empty at its latest read (mirrord.watch.read_lag), every directory is watched, no file
system below the root is lost and the root is not, no catch-up of it is queued or running
(an overflow's, the start's: until it is collected, its bound is the one that covers the
gap), the last one did not fail, and no change waits unwritten in the pipeline. It then
becomes the wall time of that latest read less MARGIN_NS (ctime is read from the kernel's
coarse clock, up to a tick behind time.time_ns()). A source never recorded (a new state
database, a source added) has no bound: its first catch-up compares as before, and then
ships every file it has no row for anyway.

What costs: after a clean stop, only files changed in the last MARGIN_NS before it are put
again. After a crash, those changed since the last heartbeat (heartbeat_interval). A
`chown -R` (not mirrored) or a `chmod -R` made while the daemon was stopped puts every
file it touched again. A wall clock stepped back while stopped can date a change before
the bound: then only `reconcile --checksum` finds it (README, What is mirrored live).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mirrord.logsetup import kv

if TYPE_CHECKING:
    from mirrord.daemon import Daemon

log = logging.getLogger("mirrord.daemon")

STATE_KEY = "watched_through"
MARGIN_NS = 1_000_000_000


class WatchedThrough:
    """The per-source bound (ns since the epoch, or absent), as read at start
    (`stored`: the state document, any shape: what is not a source -> int mapping is
    ignored) and moved by `advance`."""

    def __init__(self, stored: object):
        self.bounds: dict[str, int] = {}
        if isinstance(stored, dict):
            self.bounds = {k: v for k, v in stored.items()
                           if isinstance(k, str) and type(v) is int}
        self.failed: set[str] = set()   # sources whose latest catch-up raised

    def get(self, source: str) -> int | None:
        """The bound of `source` (ns), None when none was ever recorded."""
        return self.bounds.get(source)

    def catch_up_done(self, source: str, ok: bool) -> None:
        """A catch-up of `source` was collected; `ok` False when it raised: the bound then
        stays where it is for the rest of this run, so the next start compares again."""
        if ok:
            self.failed.discard(source)
        else:
            self.failed.add(source)

    def advance(self, d: Daemon, health: dict[str, dict] | None = None) -> bool:
        """Move each source's bound to its watcher's latest empty-queue read (less
        MARGIN_NS) where nothing of it can have been missed (module docstring), and store
        them. `health`: d.source_health() when the caller has it. Returns whether anything
        was stored. A journal error is counted (Daemon.set_state), never raised."""
        health = d.source_health() if health is None else health
        if d.pipeline is None or d.pipeline.unwritten:
            return False
        moved = False
        for name, watcher in d.watchers.items():
            h = health.get(name)
            drained = getattr(watcher.read_lag, "drained_at_ns", None)
            if (h is None or h["state"] != "ok" or h["events_unread_for"] != 0.0
                    or drained is None or name in d.catchups_pending or name in self.failed):
                continue
            bound = drained - MARGIN_NS
            if bound > self.bounds.get(name, 0):
                self.bounds[name] = bound
                moved = True
        if moved:
            d.set_state(STATE_KEY, dict(self.bounds))
            log.debug(kv(msg="watched through", **{k: v for k, v in self.bounds.items()}))
        return moved
