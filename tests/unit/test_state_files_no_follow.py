"""Files mirrord writes in state_dir never follow a symlink planted there.

`sudo mirrord failover` runs as root in a state_dir the health service's user owns
(mirrord-health.service: StateDirectory=). A symlink planted as failover.lock had root
truncate the file it named and write a pid into it; one planted as failover.log had a
JSON line appended to it (a breaker, with a copy of /etc/passwd as the victim). The lock
now refuses (StateDirError: failover exits 3 naming it), the log line is not written (a
warning), and atomic_write's temp file gets its mode through its descriptor."""

from __future__ import annotations

import os
import stat

import pytest

from mirrord import locks
from mirrord.errors import StateDirError
from mirrord.failover.result import LOG_NAME, Run, append_log
from mirrord.fsutil import atomic_write

VICTIM = b"root:x:0:0:root:/root:/bin/bash\nline 2\n"


@pytest.mark.parametrize("name", [locks.FAILOVER, locks.DAEMON, locks.RECONCILE])
def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path, name):
    victim = tmp_path / "victim"
    victim.write_bytes(VICTIM)
    state = tmp_path / "state"
    state.mkdir()
    (state / name).symlink_to(victim)
    with pytest.raises(StateDirError, match=name):
        locks.take(state, name)
    assert victim.read_bytes() == VICTIM


def test_a_dangling_symlink_as_the_lock_makes_no_file(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / locks.FAILOVER).symlink_to(tmp_path / "made-by-root")
    with pytest.raises(StateDirError):
        locks.take(state, locks.FAILOVER)
    assert not (tmp_path / "made-by-root").exists()


def test_the_failover_log_is_not_appended_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(VICTIM)
    state = tmp_path / "state"
    state.mkdir()
    (state / LOG_NAME).symlink_to(victim)
    with pytest.raises(OSError):
        append_log(state, Run("failover", dry_run=True))
    assert victim.read_bytes() == VICTIM
    os.unlink(state / LOG_NAME)
    append_log(state, Run("failover", dry_run=True))   # a plain file: one line
    assert (state / LOG_NAME).read_text().count("\n") == 1


def test_atomic_write_sets_the_mode_on_its_own_file(tmp_path):
    atomic_write(tmp_path / "record.json", b"{}", mode=0o600)
    assert stat.S_IMODE(os.stat(tmp_path / "record.json").st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_fifo_as_the_failover_log_fails_at_once_instead_of_blocking(tmp_path):
    """A breaker: `mkfifo state/failover.log` hung failover for good (after the flip, the
    lock held). The open does not wait for a reader now, and a non-regular file is no log."""
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / LOG_NAME)
    with pytest.raises(OSError):
        append_log(state, Run("failover", dry_run=True))


def test_a_fifo_or_a_planted_record_is_no_switch_record(tmp_path, capsys):
    """The switch record is read only from a regular file owned by root or this user and
    writable by nobody else: a FIFO blocked failback for good, and a record the state_dir's
    owner planted made root's failback restore its bytes as a setuid-root flag file (two
    breakers). Either is taken as no record, with a warning."""
    import base64
    import json

    from mirrord.failover import switch_record
    from mirrord.failover.appconfig import FlagFileSwitch

    (tmp_path / "app").mkdir()
    flag = tmp_path / "app" / "readonly.flag"
    state = tmp_path / "state"
    sw = FlagFileSwitch(flag, "Read-only", state)
    assert sw.apply(True)[0]
    record = state / switch_record.RECORD
    planted = {"mode": "flagfile", "flag": str(flag), "written": base64.b64encode(b"Read-only\n").decode(),
               "content": base64.b64encode(b"#!/bin/sh\nid\n").decode(), "perm": 0o755}
    record.unlink()
    record.write_text(json.dumps(planted))
    os.chown(record, 65534, 65534)                 # the health service's user wrote it
    assert sw.apply(False)[0] and not flag.exists()   # today's message removed, nothing restored
    record.unlink(missing_ok=True)
    assert sw.apply(True)[0]
    record.unlink()
    os.mkfifo(record)
    assert sw.load_record() is None                # at once, not blocked
    assert "is damaged" in capsys.readouterr().err


@pytest.mark.parametrize("field,value", [("perm", 0o4755), ("perm", 0o2755), ("perm", 0o1777),
                                         ("uid", 2**32), ("gid", 2**40)])
def test_special_bits_and_ids_out_of_range_are_a_damaged_record(tmp_path, field, value):
    from mirrord.failover import switch_record
    doc = {"mode": "flagfile", "flag": "/x", "perm": 0o644, field: value}
    assert switch_record._problem(doc) is not None
