"""A watcher reading behind the file system's writes keeps its targets out of in_sync.

The journal's backlog counts what the watcher has read; what waits unread in the kernel's
event queue is in no backlog, and a target read `in_sync` with `pending 0` while a writer
outside the root kept a fanotify mark's queue full for 90 s ahead of the root's changes
(a session's note). The real Daemon runs in-process with a local target; its watcher's
read_lag (mirrord.watch.read_lag) is made to report a queue not emptied for 60 s, and the
daemon's state row, the heartbeat on the target and `events_unread_for` must say so.
"""

from __future__ import annotations

import json

from mirrord.heartbeat import NAME as HEARTBEAT_NAME
from mirrord.watch.read_lag import ReadLag
from tests.integration.test_daemon_cycle import Running, make_daemon, mirrors
from tests.reliability.conftest import poll


class StuckBehind(ReadLag):
    """A read lag that never drains: the kernel queue not found empty since `ago` s."""

    def __init__(self, ago: float):
        super().__init__()
        self.since = self.clock() - ago

    def drained(self, read_at_ns: int | None = None) -> None:
        pass    # never: not even the watched-through time moves (mirrord.watched_through)


def states(daemon) -> dict:
    return daemon.journal.get_state("daemon")["target_states"]


def test_a_watcher_behind_is_catching_up_until_it_drains(tmp_path):
    daemon = make_daemon(tmp_path)
    with Running(daemon):
        mirrors(tmp_path, "a.jpg")
        poll(lambda: states(daemon)["local"]["state"] == "in_sync", what="in sync")
        watcher = daemon.watchers["up"]
        own = watcher.read_lag
        watcher.read_lag = StuckBehind(60.0)
        poll(lambda: states(daemon)["local"]["state"] == "catching_up", what="catching up")
        st = states(daemon)["local"]
        assert st["reason"].startswith("source up: the watcher has not emptied the kernel's "
                                       "event queue for 6"), st
        assert daemon.journal.get_state("daemon")["sources"]["up"]["events_unread_for"] >= 60

        def beat() -> dict:
            return json.loads((tmp_path / "mirror" / ".mirrord" / HEARTBEAT_NAME).read_text())
        poll(lambda: beat()["state"] == "catching_up", what="the heartbeat says so")
        mirrors(tmp_path, "b.jpg")              # still shipping meanwhile
        watcher.read_lag = own
        poll(lambda: states(daemon)["local"]["state"] == "in_sync", what="in sync again")
        assert daemon.journal.get_state("daemon")["sources"]["up"]["events_unread_for"] == 0
