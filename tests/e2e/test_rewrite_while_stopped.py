"""A file rewritten while the daemon is down, its size kept and its mtime put back, reaches
every target by the catch-up at start, with no reconcile (mirrord.watched_through).

The real `mirrord run` with each watcher against a local directory, S3 (SeaweedFS) and a
mirror host (rsync over sshd), `[reconcile] at_start = no` and `every = off`. The shapes
are what an operator or an intruder does while nothing watches: bytes overwritten in
place and the mtime put back with utime (ransomware covering its tracks, a `touch -r`), a
same-size copy written over the file with `cp -p`, a backup's copy renamed over it with
its old mtime (`rsync -a` from a backup), the mode changed and changed back. Before the
watched-through bound, each looked shipped to the catch-up (size, mtime and mode match)
and the targets kept the old bytes until a `reconcile --checksum`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from mirrord import config as config_mod
from tests.e2e.test_stopped_changes import catchups, no_pass_env, start, write
from tests.reliability.conftest import Env, poll


@pytest.fixture(params=["inotify", "fanotify"])
def env(request, tmp_path, seaweedfs, sshd):
    with no_pass_env(tmp_path, seaweedfs, sshd, watcher=request.param) as e:
        yield e


def bound(env: Env) -> int:
    """The source's watched-through bound in the state database (ns; 0: none yet)."""
    db_path = config_mod.load(env.cfg).mirrord.journal_path
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT value FROM kv WHERE key = 'watched_through'").fetchone()
    return json.loads(row[0]).get("uploads", 0) if row else 0


def populate(src: Path) -> None:
    write(src / "ransom.jpg", b"r" * 5000)
    write(src / "big" / "ransom.bin", os.urandom(300_000))
    write(src / "cp-p.jpg", b"c" * 4096)
    write(src / "backup.jpg", b"b" * 2048)
    write(src / "mode.jpg", b"m" * 100, 0o640)
    write(src / "untouched.jpg", b"u" * 100)


def rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """Overwrite `path` in place with `data` (same length) and put its mtime back."""
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def change_all(src: Path, scratch: Path) -> None:
    rewrite_keeping_size_and_mtime(src / "ransom.jpg", b"X" * 5000)
    rewrite_keeping_size_and_mtime(src / "big" / "ransom.bin", os.urandom(300_000))
    other = scratch / "other.jpg"
    other.write_bytes(b"C" * 4096)
    os.utime(other, ns=(0, (src / "cp-p.jpg").stat().st_mtime_ns))
    subprocess.run(["cp", "-p", str(other), str(src / "cp-p.jpg")], check=True)
    old = scratch / "backup.jpg"
    old.write_bytes(b"B" * 2048)
    os.chmod(old, 0o644)
    os.utime(old, ns=(0, (src / "backup.jpg").stat().st_mtime_ns))
    shutil.move(str(old), str(src / "backup.jpg"))   # a rename: new inode, old mtime
    mode = src / "mode.jpg"
    os.chmod(mode, 0o600)
    rewrite_keeping_size_and_mtime(mode, b"M" * 100)
    os.chmod(mode, 0o640)


def changed_in_place(env: Env) -> int:
    """`changed_in_place` of the newest catch-up done line of the daemon's log."""
    lines = [line for line in env.log_text().splitlines() if "catch-up done" in line]
    field = [f for f in lines[-1].split() if f.startswith("changed_in_place=")]
    return int(field[0].split("=", 1)[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_rewrites_that_keep_size_and_mtime_reach_every_target(env, tmp_path, sig):
    populate(env.src)
    start(env)
    env.assert_exact(by="the catch-up")
    marked = time.time_ns()
    # a bound past the files' last change: written at a heartbeat (the kill) or at the stop
    poll(lambda: bound(env) > marked - 1_000_000_000, timeout=30, what="a watched-through bound")
    env.daemon.kill(sig)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    change_all(env.src, scratch)
    start(env)
    env.assert_exact(by="the catch-up")
    assert changed_in_place(env) >= 5


def test_nothing_is_sent_again_after_a_clean_stop_with_nothing_changed(env):
    """The bound a clean stop stores lies past every change the daemon shipped: the next
    start proposes nothing for the files it did not see change (a bound never stored, or
    stored too early, would put every file again at each start)."""
    populate(env.src)
    start(env)
    env.assert_exact(by="the catch-up")
    time.sleep(1.5)    # past watched_through.MARGIN_NS: the files' ctimes lie before the bound
    env.daemon.kill(signal.SIGTERM)
    before = catchups(env)
    start(env)
    assert catchups(env) == before + 1
    assert changed_in_place(env) == 0
    env.assert_exact(by="the catch-up")


def test_the_first_start_has_no_bound_and_a_later_one_does(env):
    """A new state database holds no bound (its first catch-up compares as before); the
    running daemon stores one once its start catch-up is collected, and moves it on."""
    populate(env.src)
    start(env)
    first = poll(lambda: bound(env), timeout=30, what="a watched-through bound")
    env.assert_exact(by="the catch-up")
    time.sleep(1.5)
    assert bound(env) > first
