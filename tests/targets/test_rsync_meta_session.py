"""The rsync target's .mirrord/ meta writes (the heartbeat) have an ssh session slot of
their own (connection.Connection.session(meta=True)), against the real sshd.

The transfers share MAX_SESSIONS slots over one ssh master. With as many workers, all in
long transfers, a heartbeat waiting for a slot was written only when one ended: the
mirror host read the file mirror's heartbeat as stale, as a dead daemon's
(tests/e2e/test_heartbeat_beside_busy_workers.py is the same fault on the daemon's pool).
"""

from __future__ import annotations

import contextlib
import json
import threading

from mirrord.targets.rsync.connection import MAX_SESSIONS
from tests.targets.conftest import make_rsync


def test_a_meta_write_goes_while_every_transfer_slot_is_taken(sshd):
    t = make_rsync(sshd)
    t.open()
    try:
        with contextlib.ExitStack() as slots:
            for _ in range(MAX_SESSIONS):   # every transfer's slot, as long rsync runs hold them
                slots.enter_context(t.conn.session())
            done = threading.Event()
            failed: list[BaseException] = []

            def write() -> None:
                try:
                    t.write_meta("heartbeat.json", json.dumps({"unix": 1.0}).encode())
                except BaseException as exc:  # noqa: BLE001 - reported below
                    failed.append(exc)
                done.set()

            threading.Thread(target=write, daemon=True).start()
            # bounded wait, nothing timed: without its own slot it waits for ever here
            assert done.wait(60), "the meta write waited for a transfer's session slot"
            assert not failed, failed
        # a read takes a transfer's slot: read once they are free again
        assert json.loads(t.read_meta("heartbeat.json")) == {"unix": 1.0}
        t.write_meta("heartbeat.json", b"{}")
        assert t.read_meta("heartbeat.json") == b"{}"
    finally:
        t.close()


def test_meta_writes_take_one_slot_at_a_time(sshd):
    """The meta slot is one: two meta writes side by side run one after the other, and
    neither takes a transfer's slot."""
    t = make_rsync(sshd)
    t.open()
    try:
        with t.conn.session(meta=True):
            done = threading.Event()
            threading.Thread(target=lambda: (t.write_meta("a.json", b"1"), done.set()),
                             daemon=True).start()
            assert not done.wait(1.0)   # held by the slot taken above (bounded: 1 s)
            # the transfers' slots are untouched by the waiting meta write
            with contextlib.ExitStack() as slots:
                for _ in range(MAX_SESSIONS):
                    assert t.conn._sessions.acquire(timeout=30)
                    slots.callback(t.conn._sessions.release)
        assert done.wait(60)
        assert t.read_meta("a.json") == b"1"
    finally:
        t.close()
