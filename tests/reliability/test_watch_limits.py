"""fs.inotify.max_user_watches below the number of directories: the directories that
cannot be watched are a state, not a log line. They are counted (status, heartbeat,
metrics: the source is degraded), their subtrees are rescanned until watched, their
watches are retried, and once the limit is raised everything arrives live again —
with no restart and no reconcile (scheduled passes are off here)."""

from __future__ import annotations

import json

import pytest

from tests.exactness import wait_exact
from tests.watch_model import inotify_watches_in_use
from tests.reliability.conftest import Env, excluded, live_only_config, poll, sysctl

SLACK = 8        # watches our daemon may still add: far fewer than the tree's directories
DIRS = 60



@pytest.fixture
def env(tmp_path, seaweedfs, sshd):
    e = Env(tmp_path, live_only_config(tmp_path, seaweedfs, sshd, watcher="inotify"))
    try:
        yield e
    finally:
        e.close()


def exact(env: Env, timeout: float = 90.0) -> None:
    for target in env.targets.values():
        wait_exact(env.src, target, timeout=timeout, excluded=excluded)


def daemon_state(env: Env) -> dict:
    return env.daemon.status().get("daemon") or {}


@pytest.mark.serial
def test_unwatched_directories_are_degraded_rescanned_and_retried(env):
    for i in range(DIRS):
        d = env.src / f"d{i:03d}" / "sub"
        d.mkdir(parents=True)
        (d / "seed").write_text(str(i))
    with sysctl("max_user_watches", inotify_watches_in_use(uid=0) + SLACK):
        env.daemon.start()
        text = poll(lambda: "cannot watch a directory" in env.log_text() and env.log_text(),
                    what="watch error logged")
        assert "level=error" in text and "max_user_watches" in text
        state = poll(lambda: (d := daemon_state(env)).get("unwatched_directories") and d,
                     what="unwatched directories counted in status")
        assert state["sources"]["uploads"]["state"] == "degraded"
        assert state["sources"]["uploads"]["unwatched_directories"] >= DIRS
        assert "DEGRADED" in env.daemon.cli("status").stdout
        heartbeat = json.loads(env.targets["local"].read_meta("heartbeat.json"))
        poll(lambda: json.loads(env.targets["local"].read_meta("heartbeat.json")).get("degraded"),
             what="the heartbeat says degraded")
        assert heartbeat["version"] == 1
        exact(env)                             # the catch-up at start sent what was there
        # Below unwatched directories there are no events: the subtree rescans find them.
        for i in range(0, DIRS, 3):
            sub = env.src / f"d{i:03d}" / "sub"
            (sub / "while-unwatched").write_text(f"written while unwatched {i}")
            (sub / "newdir").mkdir()
            (sub / "newdir" / "deep").write_text("deep")
        exact(env)
    # The limit is back: the watches are retried; no restart, no reconcile.
    poll(lambda: daemon_state(env).get("unwatched_directories") == 0
         and daemon_state(env)["sources"]["uploads"]["state"] == "ok",
         timeout=120, what="every directory watched again")
    for i in range(DIRS):
        sub = env.src / f"d{i:03d}" / "sub"
        (sub / "later").write_text(f"written after the limit rose {i}")
        (sub / "seed").unlink()
    (env.src / "d000" / "sub").rename(env.src / "d000" / "moved")
    exact(env)
    passes = [line for line in env.log_text().splitlines() if "reconcile pass done" in line]
    assert all("reason=start" in line for line in passes), passes   # no repair pass ran
    assert env.daemon.stop() == 0
