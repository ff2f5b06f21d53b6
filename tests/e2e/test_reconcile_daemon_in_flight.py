"""The daemon and `mirrord reconcile` on one state_dir, each starting while the other has
a row in flight: neither takes the other's rows for a crash's leftovers.

The real `mirrord run` and `mirrord reconcile` processes on the three real targets with
`[reconcile] at_start = no` (test_stopped_changes' fixture). The in-flight window is held
open by the fault point "shipped" (mirrord.faults: the op done on the target, nothing of
it recorded), in whichever process ships the row; a process is held there, never timed.
Before, a daemon started while a reconcile shipped released that reconcile's rows at its
start and shipped them a second time beside it (mirrord.interrupted), and a reconcile
begun with the daemon down released, at its next target, the rows the daemon had started
shipping since.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess

from mirrord import config as config_mod
from tests.e2e.helpers import MIRRORD
from tests.e2e.test_crash_in_flight import faults, held, hold, restart_one_worker  # noqa: F401
from tests.e2e.test_stopped_changes import env, start, write  # noqa: F401 (env: a fixture)
from tests.reliability.conftest import poll


def _reconcile(env, faults, *args: str) -> subprocess.Popen:  # noqa: F811
    """`mirrord reconcile` in the background, with the daemon's fault directory."""
    return subprocess.Popen([MIRRORD, "-c", str(env.cfg), "reconcile", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MIRRORD_FAULT_DIR": str(faults)},
                            start_new_session=True)


def _reached(faults, line: str) -> int:  # noqa: F811
    """How many times a worker (of either process) was held for `line` ("TARGET PATH")."""
    reached = faults / "shipped.reached"
    return reached.read_text().splitlines().count(line) if reached.exists() else 0


def _in_flight(env, target: str, path: str) -> bool:  # noqa: F811
    """Whether the journal row of `path` on `target` is claimed (read-only connection)."""
    db_path = config_mod.load(env.cfg).mirrord.journal_path
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("SELECT claimed FROM ops WHERE target = ? AND path = ?",
                         (target, os.fsencode(path))).fetchone()
    finally:
        db.close()
    return row is not None and row[0] != 0


def _held(faults, rec: subprocess.Popen, target: str, path: str) -> None:  # noqa: F811
    """Wait until a worker is held after doing `path` on `target`; the reconcile's output
    when it ended meanwhile."""
    def check() -> bool:
        if held(faults, target, path):
            return True
        assert rec.poll() is None, f"reconcile ended {rec.returncode}: {rec.communicate()[0]}"
        return False
    poll(check, timeout=60, what=f"{path} done on {target}, held")


def _ends(proc: subprocess.Popen, timeout: float = 120) -> str:
    """The output of `proc` once it exited 0 (bounded)."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def _shipped_once_then_stopped(env) -> None:  # noqa: F811
    write(env.src / "keep.jpg", b"kept")     # a source with no file left looks unmounted
    start(env)
    env.assert_exact(by="the catch-up")
    env.daemon.kill(signal.SIGTERM)


def test_a_daemon_started_while_a_reconcile_ships_leaves_its_rows_to_it(env, faults):  # noqa: F811
    _shipped_once_then_stopped(env)
    write(env.src / "held.jpg", os.urandom(4000))
    hold(faults, "local", "held.jpg")
    rec = _reconcile(env, faults, "--target", "local")
    try:
        _held(faults, rec, "local", "held.jpg")
        restart_one_worker(env)    # the daemon starts, one worker per target
        # its start took no row for a crash's: the reconcile's is left to it
        assert "ops cut short" not in env.log_text()
        assert "left to it" in env.log_text()
        # the daemon's one local worker is free: it did not take the reconcile's row (it
        # would be held on it, as the reconcile's worker is)
        write(env.src / "after.jpg", b"written once the daemon runs")
        poll(lambda: env.targets["local"].read("after.jpg") == b"written once the daemon runs",
             timeout=60, what="after.jpg shipped by the daemon")
        assert _in_flight(env, "local", "held.jpg")
        assert _reached(faults, "local held.jpg") == 1
        (faults / "shipped").unlink()
        out = _ends(rec)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    assert "a daemon started" in out, out
    env.assert_exact(by="the catch-up")


def test_a_reconcile_reaching_its_next_target_leaves_the_daemons_rows(env, faults):  # noqa: F811
    """The reconcile began with the daemon down (local, then s3, then host); the daemon
    started while its local pass was held and began shipping to s3; the reconcile's s3
    pass must not take that row."""
    _shipped_once_then_stopped(env)
    write(env.src / "held.jpg", os.urandom(4000))
    hold(faults, "local", "held.jpg")
    rec = _reconcile(env, faults)
    try:
        _held(faults, rec, "local", "held.jpg")
        (faults / "shipped").write_text("local held.jpg\ns3 held.jpg\n")
        restart_one_worker(env)
        poll(lambda: held(faults, "s3", "held.jpg"), timeout=60, what="the daemon's s3 put held")
        (faults / "shipped").write_text("s3 held.jpg\n")    # the reconcile's local put goes on
        out = _ends(rec)        # its s3 pass finds held.jpg there: nothing to repair
        assert _in_flight(env, "s3", "held.jpg")      # still the daemon's, in flight
        assert _reached(faults, "s3 held.jpg") == 1
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    assert "a daemon started" in out, out
    (faults / "shipped").unlink()
    env.assert_exact(by="the catch-up")


def test_a_reconcile_killed_while_the_daemon_runs_leaves_no_row_claimed(env, faults):  # noqa: F811
    """The rows left to a running reconcile are the daemon's to undo once it is gone: a
    put below new directories, the reconcile killed there, the directories then removed
    at the source; the daemon, running all along, makes the target exact."""
    _shipped_once_then_stopped(env)
    write(env.src / "new" / "day" / "held.jpg", os.urandom(4000))
    hold(faults, "local", "new/day/held.jpg")
    rec = _reconcile(env, faults, "--target", "local")
    try:
        _held(faults, rec, "local", "new/day/held.jpg")
        restart_one_worker(env)
        assert _in_flight(env, "local", "new/day/held.jpg")
    finally:
        rec.kill()
        rec.wait()
    (faults / "shipped").unlink()
    shutil.rmtree(env.src / "new")
    env.assert_exact(by="the catch-up")
    assert "ops a process that is gone left in flight run again" in env.log_text()


def _claimed_count(env, target: str) -> int:
    """How many rows of `target` are in flight (read-only connection)."""
    db_path = config_mod.load(env.cfg).mirrord.journal_path
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT count(*) FROM ops WHERE target = ? AND claimed != 0",
                          (target,)).fetchone()[0]
    finally:
        db.close()


def test_a_reconcile_takes_back_its_rows_when_the_daemon_it_handed_over_to_dies(env, faults):  # noqa: F811
    """A reconcile begun with the daemon down hands its shipping over to a daemon that
    starts; the daemon is killed before it shipped those rows. Before, the pass waited for
    them with no time limit (until a signal); now it ships them again itself."""
    _shipped_once_then_stopped(env)
    names = [f"r{i:02}.jpg" for i in range(60)]   # more than 4 workers take at once
    for name in names:
        write(env.src / name, os.urandom(3000))
    hold(faults, "local", "r*.jpg")             # every worker is held once it did its batch
    rec = _reconcile(env, faults, "--target", "local")
    reached = faults / "shipped.reached"

    def lines() -> int:
        return len(reached.read_text().splitlines()) if reached.exists() else 0
    try:
        # every row the reconcile claimed has been done and its worker held; rows remain
        poll(lambda: 0 < lines() == _claimed_count(env, "local") < len(names),
             timeout=60, what="the reconcile's workers held with rows left queued")
        before = lines()
        restart_one_worker(env)                  # the reconcile hands over to it
        poll(lambda: lines() > before, timeout=60, what="the daemon's worker held")
        env.daemon.kill(signal.SIGKILL)          # gone before it shipped the rest
        (faults / "shipped").unlink()            # everyone let go
        out = _ends(rec)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    assert "a daemon started" in out and "this run ships again" in out, out
    for name in names:
        assert env.targets["local"].read(name) == (env.src / name).read_bytes(), name
