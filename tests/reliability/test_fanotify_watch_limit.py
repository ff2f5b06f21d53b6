"""The fanotify watcher in the real `mirrord run` daemon (issue 18): with
fs.inotify.max_user_watches below the number of directories it mirrors every new
directory live while inotify reports the limit, and changes elsewhere on the same file
system (which its one filesystem mark sees too) are dropped before any journal work.

A local target only: this is about the watcher, and the local target is the cheapest
place to look. Scheduled reconcile passes are off, so only the live stream can deliver
what is written after start. The global sysctl is lowered for as short a time as
possible and always restored (tests/reliability/conftest.sysctl).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mirrord.watch.fanotify import fanotify_available
from mirrord.watch.inotify import TreeWatcher
from tests.exactness import wait_exact
from tests.reliability.conftest import Env, excluded, poll, sysctl
from tests.watch_model import inotify_watches_in_use

DIRS = 60       # new directories, each with a subdirectory: 120 > the lowered limit
SLACK = 8       # watches other processes of this user may add meanwhile


def _config(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    ok, why = fanotify_available(str(src))
    assert ok, f"fanotify is not available here: {why}"
    cfg = tmp / "mirrord.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = {tmp / 'state'}
workers = 4
heartbeat_interval = 500ms

[reconcile]
every = off

[source:uploads]
path = {src}
targets = local
exclude = *.tmp, *.part, .*.swp, *~
watcher = fanotify

[target:local]
type = local
path = {tmp / 'mirror'}
""")
    return cfg


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path, _config(tmp_path), names=("local",))
    try:
        yield e
    finally:
        e.close()


def _fill(src: Path, prefix: str) -> int:
    for i in range(DIRS):
        d = src / f"{prefix}{i:03d}" / "sub"
        d.mkdir(parents=True)
        (d / "photo.jpg").write_bytes(b"x" * (i + 1))
        (d.parent / "index.txt").write_text(str(i))
    return DIRS * 2


def _shipped(env: Env) -> int:
    """Ops the daemon shipped to the local target so far (journal target_stats)."""
    db = sqlite3.connect(env.tmp / "state" / "journal.db")
    try:
        row = db.execute("SELECT shipped FROM target_stats WHERE target = 'local'").fetchone()
        return row[0] if row else 0
    finally:
        db.close()


@pytest.mark.serial
def test_fanotify_mirrors_every_new_directory_live_past_the_inotify_watch_limit(env):
    local = env.targets["local"]
    with sysctl("max_user_watches", inotify_watches_in_use(uid=0) + SLACK):
        env.daemon.start()
        assert "backend=fanotify" in env.log_text(), (
            "the daemon ignored watcher = fanotify: it must build its watcher with "
            "mirrord.watch.select.open_watcher")
        dirs = _fill(env.src, "d")
        wait_exact(env.src, local, timeout=90, excluded=excluded)   # live: reconcile is off
        state = poll(lambda: env.daemon.status().get("daemon"), what="the daemon's state")
        source = state["sources"]["uploads"]
        assert source["state"] == "ok" and source["unwatched_directories"] == 0, source
        assert "watch_error" not in env.log_text()
        # the same tree under the same limit: inotify needs a watch per directory
        inotify = TreeWatcher(str(env.src))
        try:
            errors = [e for e in inotify.start() if e.kind == "watch_error"]
            assert errors and inotify.unwatched > 0, (inotify.watched, dirs)
            assert all("max_user_watches" in e.detail for e in errors)
        finally:
            inotify.close()
    assert env.daemon.stop() == 0


def test_changes_elsewhere_on_the_file_system_cost_no_journal_work(env):
    env.daemon.start()
    assert "backend=fanotify" in env.log_text()
    (env.src / "first.txt").write_text("1")
    wait_exact(env.src, env.targets["local"], timeout=60, excluded=excluded)
    before = _shipped(env)
    elsewhere = env.tmp / "elsewhere"        # same file system, outside the source root
    elsewhere.mkdir()
    for d in range(20):
        (elsewhere / str(d)).mkdir()
        for i in range(50):
            (elsewhere / str(d) / f"{i}.jpg").write_bytes(b"y")
            (elsewhere / str(d) / f"{i}.jpg").rename(elsewhere / str(d) / f"{i}.png")
    (env.src / "last.txt").write_text("2")  # the queue keeps order: read after all of them
    wait_exact(env.src, env.targets["local"], timeout=60, excluded=excluded)
    poll(lambda: _shipped(env) >= before + 1, what="last.txt counted as shipped")
    assert _shipped(env) == before + 1      # one op: last.txt; none for 2,000 changes elsewhere
    assert not any(p.startswith("elsewhere") or p.endswith(".png")
                   for p in (x.name for x in (env.tmp / "mirror").rglob("*")))
    assert env.daemon.stop() == 0
