"""Churn soak: several writer processes doing random operations (tests/reliability/churn.py:
renames of directories while other writers create files inside them, permission and
mtime changes, truncates, directories published by a rename); when they stop and the
backlog drains, every target is exact BY THE LIVE STREAM ALONE: a reconcile dry run
proposes nothing on local, S3 and the ssh host, and each target matches the source
in bytes, mtimes, modes and directories (tests/exactness.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.exactness import wait_exact
from tests.reliability.conftest import Env, excluded, live_only_config, poll

ROOT = Path(__file__).resolve().parents[2]


def _soak(env: Env, seconds: float, writers: int, *, drain: float = 240.0) -> dict:
    env.daemon.start()
    poll(lambda: all(t.get("last_reconcile") for t in env.daemon.status()["targets"].values()),
         timeout=120, what="the reconcile pass that follows the start")
    procs = [subprocess.Popen([sys.executable, "-m", "tests.reliability.churn", str(env.src),
                               str(100 + i), str(seconds)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True) for i in range(writers)]
    outputs = [p.communicate(timeout=seconds + 300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    steps = sum(int(o.split()[0]) for o in outputs)
    # Let the live stream drain first, so the pass below counts what it missed.
    def drained() -> bool:
        assert env.daemon.proc.poll() is None, f"the daemon died: {env.daemon.proc.returncode}"
        return all(t["pending"] == 0 for t in env.daemon.status()["targets"].values())
    poll(drained, timeout=drain, what="the backlog drained")
    plan = json.loads(env.daemon.cli("reconcile", "--dry-run", "--json", check=False).stdout)
    missed = {name: t.get("would_send", []) + t.get("would_delete", [])
              for name, t in plan["targets"].items()
              if t.get("would_send") or t.get("would_delete")}
    for target in env.targets.values():     # exact before any reconcile ran
        wait_exact(env.src, target, timeout=30, excluded=excluded)
    assert env.daemon.stop() == 0
    return {"steps": steps, "missed_by_live_stream": missed}


# fanotify's churn once left one directory behind under load (issue 18). Two causes were
# found and fixed (mirrord/watch/fanotify_late.py: an rmdir read under the new name of a
# directory renamed before the read; fanotify_quiet.py: a quiet write named by the old
# path of a renamed directory). Its churn runs in every `make test`, so a rare miss left
# shows up.
@pytest.fixture(params=["inotify", "fanotify"])
def env(request, tmp_path, seaweedfs, sshd):
    """The three real targets, each watcher backend in turn; reconcile only on demand, so
    nothing but the live stream (and the pass that follows the start, before the churn)
    can make them exact."""
    e = Env(tmp_path, live_only_config(tmp_path, seaweedfs, sshd, watcher=request.param))
    try:
        yield e
    finally:
        e.close()


@pytest.mark.timeout(600)
def test_churn_is_exact_by_the_live_stream(env):
    result = _soak(env, seconds=45, writers=3)
    print("churn quick:", json.dumps(result)[:2000])
    assert result["steps"] > 100
    assert result["missed_by_live_stream"] == {}


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_churn_soak_10_minutes(env):
    # ~400 ops/s of unique names for 10 min leave tens of thousands of rows (most of them
    # deletes of short-lived files) on a 2-core machine: give the drain its time.
    result = _soak(env, seconds=600, writers=4, drain=2400)
    print("soak 10 min:", json.dumps(result)[:2000])
    assert result["missed_by_live_stream"] == {}
