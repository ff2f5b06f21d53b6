"""Whether a target still holds the heartbeat this run wrote there: a mirror emptied or
replaced behind the daemon's back.

A breaker removed the mirror host's root and made it again empty, or deleted the S3
bucket and created it again. The daemon's next heartbeat landed in the empty place:
status said in_sync, and on the mirror host failover, switchover and /ready saw a fresh
heartbeat with 0 pending over a mirror holding none of the shipped files. A local
target's root replaced is caught by its own RootIdentity (mirrord.targets.root_check,
Features.guards_root): it is left to it, so a mount point left empty for a while asks
for no pass (whose re-sends would all be refused, then repeated when the mount is back).

So before each heartbeat after the first of this run, the target's heartbeat is read
(Target.read_meta: one GET on S3, one `cat` over the host's SSH connection, one file
read). Absent means what was shipped there may be gone: the heartbeat is not written
(failover then sees it age), the target is `degraded` with the reason, and a reconcile
pass is asked for through the daemon's trouble hooks (reason "target_wiped"). Once a
real pass over that target that started after the loss ends in sync (the daemon's own,
or `mirrord reconcile`: both store `reconcile:{target}`), heartbeats are written again;
also once the heartbeat is there again (the same mirror is back). A heartbeat removed by
hand is taken the same way: it costs one pass.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Callable

from mirrord.logsetup import kv
from mirrord.reconcile.result import STATE_KEY

log = logging.getLogger("mirrord.daemon")

REASON = "target_wiped"


class WipeWatch:
    """Per target: written (a heartbeat of this run is there) or wiped (since when, why).
    before_write / after_write run on the targets' side threads (Shipper.submit_task),
    beat on the main thread."""

    def __init__(self, heartbeat_name: str, *, clock: Callable[[], float] = time.time):
        self.name = heartbeat_name
        self.clock = clock
        self.written: set[str] = set()
        self.wiped: dict[str, tuple[float, str]] = {}   # target -> (Unix seconds, why)
        self._found: queue.SimpleQueue[str] = queue.SimpleQueue()

    def before_write(self, target) -> str | None:
        """None when the heartbeat may be written to `target` (a Target); else why not.
        Raises what target.read_meta raises (MirrordError: the target is unreachable)."""
        name = target.name
        if target.features.guards_root:
            return None   # its own check keeps writes out of a root replaced (root_check)
        if name not in self.written and name not in self.wiped:
            return None   # the first of this run: nothing of ours to look for
        if target.read_meta(self.name) is not None:
            if self.wiped.pop(name, None) is not None:   # ours again: that mirror is back
                log.info(kv(msg="target holds its heartbeat again", target=name))
            return None
        if name not in self.wiped:
            why = (f"the heartbeat this daemon wrote on {name} is gone: the mirror was emptied "
                   "or replaced; a reconcile pass re-sends what it lacks")
            self.wiped[name] = (self.clock(), why)
            self.written.discard(name)
            self._found.put(name)
            log.error(kv(msg="target lost its heartbeat: mirror emptied or replaced?",
                         target=name))
        return self.wiped[name][1]

    def after_write(self, name: str) -> None:
        self.written.add(name)

    def beat(self, daemon) -> None:
        """Main thread: ask for a pass for each target newly found wiped; let go of each
        whose real pass, started after the loss, ended in sync."""
        while True:
            try:
                name = self._found.get_nowait()
            except queue.Empty:
                break
            feeding = [s for s in daemon.cfg.sources if name in s.targets]
            for hook in daemon.trouble_hooks[:] if feeding else ():
                hook(daemon, feeding[0], REASON)
        for name, (since, _why) in list(self.wiped.items()):
            doc = daemon.journal.get_state(STATE_KEY.format(target=name))
            if (isinstance(doc, dict) and doc.get("in_sync") and not doc.get("dry_run")
                    and float(doc.get("at") or 0) >= since):
                self.wiped.pop(name, None)
                log.info(kv(msg="target reconciled after losing its heartbeat", target=name))
