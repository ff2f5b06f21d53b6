"""The rsync target's .mirrord/ meta reads and writes (the heartbeat, and the daemon's read
of it before each write) have an ssh session slot of their own
(connection.SshConnection.session(meta=True)), against the real sshd.

The transfers share TRANSFER_SESSIONS slots over one ssh master. With as many workers, all
in long transfers, a heartbeat waiting for a slot was written only when one ended: the
mirror host read the file mirror's heartbeat as stale, as a dead daemon's
(tests/e2e/test_heartbeat_beside_busy_workers.py is the same fault on the daemon's pool).
The meta slot is one of MAX_SESSIONS: with the master's own session, no more than before
are open at once (sshd's MaxSessions, 10 by default).
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Callable

from mirrord.mirror_wiped import WipeWatch
from mirrord.targets.rsync.connection import MAX_SESSIONS, TRANSFER_SESSIONS
from tests.targets.conftest import make_rsync


def in_thread(fn: Callable[[], object]) -> tuple[threading.Event, list]:
    """Run `fn` on a thread: (set when it returned or raised, [its answer or exception])."""
    done, out = threading.Event(), []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, out


@contextlib.contextmanager
def transfers_all_busy(t):
    """Every transfer slot of `t`'s connection taken, as long rsync runs hold them."""
    with contextlib.ExitStack() as slots:
        for _ in range(TRANSFER_SESSIONS):
            slots.enter_context(t.conn.session())
        yield


def test_the_meta_slot_is_one_of_the_sessions_counted():
    assert TRANSFER_SESSIONS + 1 == MAX_SESSIONS


def test_the_daemons_heartbeat_write_goes_while_every_transfer_slot_is_taken(sshd):
    """The daemon's path: WipeWatch.before_write reads the heartbeat back (after the
    first of the run), then the write."""
    t = make_rsync(sshd)
    t.open()
    try:
        t.write_meta("heartbeat.json", b'{"unix": 0.5}')
        wipes = WipeWatch("heartbeat.json")
        wipes.after_write(t.name)   # a heartbeat of this run is there: it is read first

        def beat() -> None:
            assert wipes.before_write(t) is None
            t.write_meta("heartbeat.json", json.dumps({"unix": 1.0}).encode())
            wipes.after_write(t.name)

        with transfers_all_busy(t):
            done, out = in_thread(beat)
            # bounded wait, nothing timed: without its own slot it waits for ever here
            assert done.wait(60), "the heartbeat waited for a transfer's session slot"
            assert out == [None], out
            assert json.loads(t.read_meta("heartbeat.json")) == {"unix": 1.0}
        # the transfers' slots are free again and still work
        assert t.read("never-there.jpg") is None
    finally:
        t.close()


def test_meta_reads_and_writes_take_one_slot_at_a_time(sshd):
    """The meta slot is one: a meta write waits while it is taken, and takes no
    transfer's slot meanwhile."""
    t = make_rsync(sshd)
    t.open()
    try:
        with t.conn.session(meta=True):
            done, out = in_thread(lambda: t.write_meta("a.json", b"1"))
            assert not done.wait(1.0)   # held by the slot taken above (bounded: 1 s)
            with contextlib.ExitStack() as slots:   # every transfer slot is still free
                for _ in range(TRANSFER_SESSIONS):
                    assert t.conn._sessions.acquire(timeout=30)
                    slots.callback(t.conn._sessions.release)
        assert done.wait(60)
        assert out == [None], out
        assert t.read_meta("a.json") == b"1"
    finally:
        t.close()
