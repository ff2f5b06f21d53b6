"""fs.inotify.max_user_watches below the number of directories: a loud error, counted in
status, and the unwatched part still mirrored by `mirrord reconcile`."""

from __future__ import annotations

import os

from tests.reliability.conftest import poll, sysctl

SLACK = 8        # watches our daemon may still add: far fewer than the tree's directories
DIRS = 120


def user_watches(uid: int = 0) -> int:
    """inotify watches held right now by processes of `uid` (the limit is per user)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                    total += sum(line.startswith("inotify wd:") for line in fh)
        except OSError:
            continue
    return total


def test_watch_limit_below_directories(env):
    for i in range(DIRS):
        d = env.src / f"d{i:03d}" / "sub"
        d.mkdir(parents=True)
        (d / "seed").write_text(str(i))
    # Other processes of this user keep their watches; only new ones are refused, and only
    # while the daemon starts: the window is closed again as soon as it runs.
    with sysctl("max_user_watches", user_watches() + SLACK):
        env.daemon.start()
    text = poll(lambda: "cannot watch a directory" in env.log_text() and env.log_text(),
                what="watch error logged")
    assert "level=error" in text and "max_user_watches" in text
    status = poll(lambda: (s := env.daemon.status()) and (s.get("daemon") or {}).get("watch_errors")
                  and s, what="watch errors counted in status")
    assert status["daemon"]["watch_errors"] >= 1
    assert status["daemon"]["watched_directories"] < DIRS * 2
    env.converge()                       # the catch-up at start sent what was there
    # Changes below unwatched directories produce no event: reconcile finds them.
    for i in range(DIRS):
        sub = env.src / f"d{i:03d}" / "sub"
        (sub / "later").write_text(f"written after start {i}")
        (sub / "seed").unlink()
    (env.src / "d000" / "sub").rename(env.src / "d000" / "moved")
    res = env.daemon.cli("reconcile", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    env.converge()
    assert env.daemon.stop() == 0
