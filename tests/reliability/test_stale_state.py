"""The state database lost or stale between two runs: the daemon alone makes every target
exact again, with no `mirrord reconcile` run by anyone.

The catch-up at start compares the source with the database's record of what was
shipped, so a record that is gone (the file deleted) or old (restored from an earlier
copy) cannot tell it which files a target holds that the source no longer has. The
pass that follows every start (`[reconcile] at_start`, on by default) lists each
target and removes them. `every = off`: no other pass runs.
"""

from __future__ import annotations

import shutil
import signal

import pytest

from tests.reliability.conftest import Env, live_only_config, poll


@pytest.fixture
def env(tmp_path, seaweedfs, sshd):
    e = Env(tmp_path, live_only_config(tmp_path, seaweedfs, sshd))
    try:
        yield e
    finally:
        e.close()


def _start(env: Env) -> None:
    """Start and wait for this run's start-up pass to be recorded."""
    before = env.log_text().count("reconcile pass done") if env.log.exists() else 0
    env.daemon.start()
    poll(lambda: env.log_text().count("reconcile pass done") >= before + len(env.targets),
         timeout=180, what="the start-up reconcile pass")


def _write(path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("how", ["deleted", "restored-older"])
def test_state_database_gone_or_stale(env, how):
    db = env.tmp / "state" / "journal.db"
    _write(env.src / "old" / "a.jpg", b"a")
    _write(env.src / "old" / "b.jpg", b"b")
    _start(env)
    env.assert_exact(timeout=120, by="the start-up pass", passes_allowed=True)
    env.daemon.kill(signal.SIGTERM)
    saved = env.tmp / "journal-copy"
    saved.mkdir()
    for f in env.tmp.joinpath("state").glob("journal.db*"):
        shutil.copy2(f, saved / f.name)
    _start(env)
    _write(env.src / "later" / "c.jpg", b"c")        # shipped after the copy was taken
    (env.src / "later" / "empty").mkdir()
    _write(env.src / "old" / "a.jpg", b"a, changed")
    env.assert_exact(timeout=120, by="the start-up pass", passes_allowed=True)
    env.daemon.kill(signal.SIGKILL)
    for f in env.tmp.joinpath("state").glob("journal.db*"):
        f.unlink()
    if how == "restored-older":
        for f in saved.iterdir():
            shutil.copy2(f, db.parent / f.name)
    shutil.rmtree(env.src / "later")                  # deleted while down: extras now
    (env.src / "old" / "b.jpg").unlink()
    _start(env)
    env.assert_exact(timeout=120, by="the start-up pass", passes_allowed=True)
