"""State faults: the journal's disk full; a journal file damaged on purpose."""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest

from mirrord.targets.local import LocalTarget
from tests.e2e.helpers import MIRRORD, Mirrord, wait_converged
from tests.reliability.conftest import Env, poll, tmpfs, write_config


def _fill(directory, name: str = "filler") -> None:
    """Fill a file system up to the last byte (ENOSPC ends it)."""
    fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for block in (1 << 16, 512):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError:
                pass
    finally:
        os.close(fd)


@pytest.mark.parametrize("recovery", ["space-freed", "stop-free-restart"])
def test_journal_disk_full_holds_changes_then_converges(tmp_path, seaweedfs, sshd, recovery):
    """The daemon keeps running and holds changes in memory; once space is back it
    writes them and drains. Stopped while full (exit 0), a restart catches up."""
    state = tmp_path / "state"
    with tmpfs(state, "16m"):
        e = Env(tmp_path, write_config(tmp_path, seaweedfs, sshd, state_dir=str(state)))
        try:
            for i in range(20):
                (e.src / f"before{i}").write_bytes(os.urandom(1000))
            e.daemon.start()
            e.converge()
            _fill(state)
            for i in range(300):
                d = e.src / f"full{i % 6}"
                d.mkdir(exist_ok=True)
                (d / f"f{i:03d}").write_bytes(os.urandom(1000))
            (e.src / "before0").unlink()
            (e.src / "before1").rename(e.src / "renamed1")
            (e.src / "before2").write_bytes(b"overwritten while the journal is full")
            poll(lambda: "cannot write the journal" in e.log_text(), what="journal error logged")
            assert e.daemon.proc.poll() is None, e.log_text()[-3000:]
            assert e.daemon.status()["daemon_pid"] == e.daemon.proc.pid   # status still reads
            if recovery == "stop-free-restart":
                assert e.daemon.stop() == 0
                (state / "filler").unlink()
                e.daemon.start()
            else:
                (state / "filler").unlink()
            e.converge(timeout=240)
            poll(lambda: all(t["pending"] == 0 for t in e.daemon.status()["targets"].values()),
                 what="an empty backlog")
            if recovery == "space-freed":
                assert e.daemon.status()["daemon"]["journal_errors"] >= 1
            assert "Traceback" not in e.log_text()
            assert e.daemon.stop() == 0
        finally:
            e.close()


@pytest.mark.parametrize("damage", ["truncated", "zeroed-pages", "not-a-database"])
def test_damaged_journal_refuses_to_start(tmp_path, damage):
    """More kinds of damage than tests/e2e/test_operations.py's destroyed header."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(300):
        (src / f"f{i:03d}").write_text("x" * i)
    cfg = tmp_path / "m.ini"
    cfg.write_text("[mirrord]\nstate_dir = ./state\n[source:s]\npath = ./src\ntargets = t\n"
                   "[target:t]\ntype = local\npath = ./dst\n")
    daemon = Mirrord(cfg, tmp_path / "log").start()
    wait_converged(src, LocalTarget("t", tmp_path / "dst"))
    assert daemon.stop() == 0
    db = tmp_path / "state" / "journal.db"
    with sqlite3.connect(db) as conn:   # fold the WAL in, so the damage hits real data
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    assert len(data) >= 4096 * 4, len(data)
    if damage == "truncated":
        data = data[: len(data) // 2 + 100]
    elif damage == "zeroed-pages":
        data[4096 * 2:] = bytes(len(data) - 4096 * 2)
    else:
        data = bytearray(b"this is not a database\n" * 500)
    db.write_bytes(bytes(data))
    for name in ("journal.db-wal", "journal.db-shm"):
        (tmp_path / "state" / name).unlink(missing_ok=True)
    res = subprocess.run([MIRRORD, "-c", str(cfg), "run"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr   # an unusable state database: exit 2
    assert "damaged" in res.stderr and "refusing to start" in res.stderr and str(db) in res.stderr
    assert "Traceback" not in res.stderr
    assert db.read_bytes() == bytes(data)   # never silently replaced by an empty journal
