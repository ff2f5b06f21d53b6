"""mirrord.claimer and the journal's claims of live processes: a row another running
process (a `mirrord reconcile`, a daemon) holds in flight is never taken for a crash's
leftovers; real processes, real /proc, real SQLite."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mirrord import claimer
from mirrord.journal import Change, Journal

S, T = "up", "t"


@pytest.fixture
def other():
    """A live process other than ours, and its claimer id."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield proc, f"{proc.pid}:{claimer._start_time(proc.pid)}"
    finally:
        proc.kill()
        proc.wait()


def test_a_running_process_is_alive_and_a_gone_one_is_not(other):
    proc, cid = other
    assert claimer.alive(claimer.me()) and claimer.alive(cid)
    pid, start = cid.split(":")
    assert not claimer.alive(f"{pid}:{int(start) + 1}")   # the pid, reused by another
    assert claimer.signalable(proc.pid)   # what /proc hides (hidepid=2) kill(2) still sees
    proc.kill()
    proc.wait()
    assert not claimer.alive(cid) and not claimer.signalable(proc.pid)
    for bad in (None, "", "x:y", "12", "0:0"):
        assert not claimer.alive(bad)


def test_a_killed_process_not_reaped_yet_is_gone(other):
    proc, cid = other
    proc.kill()
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)   # a zombie now, not reaped
    assert not claimer.alive(cid)


def test_the_rows_a_live_process_holds_are_never_released(tmp_path, other):
    proc, cid = other
    path = tmp_path / "j.db"
    theirs = Journal(path, {S: (T,)}, claimer=cid)
    theirs.enqueue([Change(S, "theirs.jpg", "put")])
    assert len(theirs.claim(T, 10, now=1e12)) == 1
    gone = Journal(path, {S: (T,)}, claimer="0:0", reset_claims=False)
    gone.enqueue([Change(S, "crashed.jpg", "put")])
    assert len(gone.claim(T, 10, now=1e12)) == 1
    gone.close()
    ours = Journal(path, {S: (T,)}, reset_claims=False)   # the daemon's start
    assert ours.gone_claimers() == {"0:0"}
    assert ours.claimed_rows(ours.gone_claimers()) == [(T, S, "crashed.jpg", "put")]
    assert ours.release_claims(T) == 1
    assert [op.path for op in ours.claim(T, 10, now=1e12)] == ["crashed.jpg"]
    assert ours.claimers(T) == {cid, ours.claimer}
    proc.kill()
    proc.wait()                  # the reconcile killed: its row is a crash's now
    assert ours.gone_claimers(T) == {cid}
    assert ours.release_claims() == 1
    assert [op.path for op in ours.claim(T, 10, now=1e12)] == ["theirs.jpg"]
    theirs.close()
    ours.close()


def test_opening_with_reset_claims_spares_a_live_process(tmp_path, other):
    _, cid = other
    path = tmp_path / "j.db"
    theirs = Journal(path, {S: (T,)}, claimer=cid)
    theirs.enqueue([Change(S, "a.jpg", "put")])
    theirs.claim(T, 10, now=1e12)
    again = Journal(path, {S: (T,)})
    assert again.claim(T, 10, now=1e12) == []
    theirs.close()
    again.close()
