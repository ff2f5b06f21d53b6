"""A reconcile command and a daemon on the same state_dir, one after the other: who ships.

The command ships its repairs itself only while no daemon holds the daemon lock. A daemon
that starts while the command ships takes over; one that stops before it shipped the
command's rows hands the shipping back. A mixin of reconcile.command.Command, which owns
the state it reads and sets (`cfg`, `journal`, `daemon`, `_handed_over`, `_next_look`).
"""

from __future__ import annotations

import sys
import time

from mirrord import locks
from mirrord.pipeline import Pipeline

DAEMON_LOOK = 0.5        # seconds between looks for a daemon that started while we ship


class DaemonHandover:
    """_look_for_daemon and _take_back for Command."""

    def _look_for_daemon(self, pipeline: Pipeline | None, *, force: bool = False) -> None:
        """A daemon started on our state_dir while we ship (we found none at open): from
        now on it ships. Two processes claiming from one journal would each know only
        their own barriers (directory moves and tree removals queued: the journal's
        in-memory index), so ours stops claiming; what our workers hold is finished and
        recorded, and the pass waits for the daemon to ship the rest, as when it was
        running from the start. Looks at /proc/locks every DAEMON_LOOK seconds."""
        if self.journal is None or (self.daemon and not self._handed_over):
            return
        now = time.monotonic()
        if not force and now < self._next_look:
            return
        self._next_look = now + DAEMON_LOOK
        pid = locks.holder(self.cfg.mirrord.state_dir, locks.DAEMON)
        if self._handed_over:
            if pid is None:
                self._take_back(pipeline)
            return
        if pid is None:
            return
        self.daemon = True
        if pipeline is not None and pipeline.shipper is not None:
            pipeline.claiming = False
            self._handed_over = True
        print(f"mirrord: a daemon started (pid {pid}): it ships from now on; this run "
              f"finishes what it holds and waits for the rest", file=sys.stderr)

    def _take_back(self, pipeline: Pipeline | None) -> None:
        """The daemon we handed over to stopped (or died) before it shipped our rows: this
        pass was waiting for them with no time limit (its Session was built before the
        handover), so it waited until a signal. Ship again: release the rows the gone
        daemon left in flight on this target (mirrord.claimer) and claim again."""
        self.daemon = self._handed_over = False
        if pipeline is None or pipeline.shipper is None:
            return
        for name in pipeline.shipper.targets:
            self.journal.release_claims(name)
        pipeline.claiming = True
        print("mirrord: the daemon stopped: this run ships again", file=sys.stderr)
