"""mirrord.locks: one exclusive run lock per kind, and who holds it, read without probing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mirrord import locks


def test_take_records_the_pid_and_holder_reads_it(tmp_path):
    with locks.take(tmp_path / "state", locks.DAEMON) as lock:
        assert (tmp_path / "state" / locks.DAEMON).read_text().strip() == str(os.getpid())
        assert locks.holder(tmp_path / "state", locks.DAEMON) == os.getpid()
        assert lock.fd >= 0
    assert locks.holder(tmp_path / "state", locks.DAEMON) is None


def test_a_second_take_is_busy_and_names_the_holder(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from mirrord import locks; "
        f"l = locks.take({str(tmp_path)!r}, locks.RECONCILE); print('held', flush=True); "
        "sys.stdin.read()")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(locks.Busy) as caught:
            locks.take(tmp_path, locks.RECONCILE)
        assert caught.value.pid == child.pid
        assert locks.holder(tmp_path, locks.RECONCILE) == child.pid
        assert locks.holder(tmp_path, locks.DAEMON) is None   # another kind: free
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    assert locks.holder(tmp_path, locks.RECONCILE) is None    # released when the holder exits
    locks.take(tmp_path, locks.RECONCILE).close()


def test_holder_never_takes_the_lock(tmp_path):
    """A status check at the moment a daemon starts must not make the daemon's take fail."""
    (tmp_path / locks.DAEMON).write_text("")
    for _ in range(50):
        assert locks.holder(tmp_path, locks.DAEMON) is None
    with locks.take(tmp_path, locks.DAEMON):
        pass


def test_holder_of_a_missing_file_is_none(tmp_path):
    assert locks.holder(tmp_path / "nowhere", locks.DAEMON) is None


def test_holder_falls_back_to_a_probe_without_proc_locks(tmp_path):
    with locks.take(tmp_path, locks.DAEMON):
        pid = locks.holder(tmp_path, locks.DAEMON, proc_locks=str(tmp_path / "no-such-file"))
        assert pid is not None   # held: the probe cannot take it (same process: flock is per fd)
