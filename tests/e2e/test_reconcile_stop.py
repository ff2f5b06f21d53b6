"""SIGTERM / SIGINT to a real `mirrord reconcile` in the middle of a repair.

Before: SIGTERM (systemctl stop, the timer unit's TimeoutStartSec) killed the process
where it stood (exit -15, nothing said, no summary stored); Ctrl-C exited 1 saying
nothing. Now the run stops cleanly: exit 1, one line naming the signal, the summary
printed with the unshipped rows counted in one line, nothing deleted; the repairs stay
queued and the next run finds the target exact.

The signal must land while the repair is under way, whatever the machine's speed: a
daemon runs (so the command queues its repairs for the daemon and waits for them) and
is paused with SIGSTOP, so the repairs cannot be shipped until the test lets it go on.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from tests.e2e.helpers import MIRRORD, Mirrord
from tests.e2e.test_reconcile_cli import files, mirrord, write_config


def queued(state: str) -> int:
    conn = sqlite3.connect(f"file:{state}/journal.db?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM ops").fetchone()[0]
    finally:
        conn.close()


def converged(site, daemon: Mirrord) -> None:
    deadline = time.monotonic() + 60
    while files(site / "mirror") != files(site / "src"):
        assert time.monotonic() < deadline, daemon.log.read_text()
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_repair_cleanly_and_nothing_is_deleted(tmp_path, sig):
    for i in range(300):
        (tmp_path / "src" / f"d{i // 100}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / f"d{i // 100}" / f"f{i:03d}").write_bytes(b"file %d" % i)
    ini = write_config(tmp_path, extra="\n[reconcile]\nat_start = no\n")
    daemon = Mirrord(ini, tmp_path / "daemon.log").start()
    proc = None
    try:
        converged(tmp_path, daemon)
        for i in range(0, 300, 3):                       # drift behind the daemon's back
            (tmp_path / "mirror" / f"d{i // 100}" / f"f{i:03d}").unlink()
        (tmp_path / "mirror/stray").write_bytes(b"not at the source")
        daemon.proc.send_signal(signal.SIGSTOP)          # it holds its lock, ships nothing
        proc = subprocess.Popen([MIRRORD, "-c", str(ini), "reconcile", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not ((tmp_path / "state/journal.db").exists() and queued(tmp_path / "state") >= 100):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        daemon.proc.send_signal(signal.SIGCONT)
        assert proc.returncode == 1, err
        assert f"reconcile stopped by {sig.name}" in err and "Traceback" not in err, err
        t = json.loads(out)["targets"]["mirror"]
        assert t["missing"] == 100 and t["deleted"] == 0 and t["refused_deletes"] == 1, t
        # one line for the 100 rows left, not one per row (and, if the signal beat the pass
        # thread to its last check, "stopped before the end of the pass")
        assert "stopped: 100 changes not shipped yet" in t["errors"][-1], t
        assert all(e.startswith("stopped") for e in t["errors"]) and len(t["errors"]) <= 2, t
        assert (tmp_path / "mirror/stray").exists()      # nothing deleted by the stopped run
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        daemon.proc.send_signal(signal.SIGCONT)
        daemon.stop()
    res = mirrord(ini, "reconcile")                       # the repairs were kept: shipped
    assert res.returncode == 0, res.stdout + res.stderr
    assert files(tmp_path / "mirror") == files(tmp_path / "src")


def test_what_the_workers_finish_after_the_signal_is_counted_as_shipped(tmp_path):
    """No daemon: the command ships with its own workers. Each is held at the fault point
    "shipped" (its files are on the mirror, nothing recorded) when Ctrl-C comes, and let go
    after it. The summary counts what they finished: before, it was taken at the signal,
    and its "N changes not shipped yet" and bytes disagreed with the mirror and with
    `mirrord status` (a new user: 18,812 said, 18,172 left)."""
    for i in range(400):
        (tmp_path / "src" / f"d{i // 100}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / f"d{i // 100}" / f"f{i:03d}").write_bytes(b"file %03d" % i)
    ini = write_config(tmp_path, extra="workers = 4\n\n[reconcile]\nat_start = no\n")
    faults = tmp_path / "faults"
    faults.mkdir()
    # the files' ops held, not the directories': a file below a new directory waits while
    # that directory's mkdir is in flight (mirrord.journal.barriers.InFlight)
    (faults / "shipped").write_text("mirror d*/*\n")
    proc = subprocess.Popen([MIRRORD, "-c", str(ini), "reconcile", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, MIRRORD_FAULT_DIR=str(faults)))
    try:
        reached = faults / "shipped.reached"
        deadline = time.monotonic() + 60
        while not (reached.exists() and len(reached.read_text().splitlines()) >= 4):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)                                   # the stop is under way: then let go
        (faults / "shipped").unlink()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1 and "reconcile stopped by SIGINT" in err, err
    on_mirror = files(tmp_path / "mirror")
    assert 0 < len(on_mirror) < 400                       # the held batches, nothing after
    t = json.loads(out)["targets"]["mirror"]
    dirs = [d for d in (f"d{i}" for i in range(4)) if (tmp_path / "mirror" / d).is_dir()]
    unshipped = (400 - len(on_mirror)) + (4 - len(dirs))   # files and directories not made
    left = [e for e in t["errors"] if "not shipped yet" in e]
    assert left and f"stopped: {unshipped} changes not shipped yet" in left[0], (
        t, len(on_mirror), dirs)
    assert t["bytes"] == sum(len(b) for b in on_mirror.values()), t
    assert queued(tmp_path / "state") >= 400 - len(on_mirror)
