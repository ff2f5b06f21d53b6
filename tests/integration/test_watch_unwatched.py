"""Directories inotify refused to watch (fs.inotify.max_user_watches below the number of
directories) are state: reported once, rescanned meanwhile, retried, and watched with
no restart once the limit is raised. Runs as root: the global sysctl is lowered for as
short a time as possible and always restored."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.watch.inotify import TreeWatcher
from tests.watch_model import inotify_watches_in_use, kernel_agrees, read_until, settle

LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "src"
    r.mkdir()
    return r



def test_unwatched_directories_are_rescanned_then_watched_once_the_limit_is_raised(root):
    w = TreeWatcher(str(root), rescan_every=0.3, retry_first=0.1, retry_cap=0.2)
    old = LIMIT.read_text().strip()
    try:
        assert w.start() == []
        LIMIT.write_text(f"{inotify_watches_in_use() + 2}\n")
        for i in range(6):
            (root / f"d{i}" / "sub").mkdir(parents=True)
            (root / f"d{i}" / "sub" / "seed").write_bytes(b"x")
        events = read_until(w, lambda evs: {e.path for e in evs if e.kind == "rescan"}
                            >= set(w.unwatched_paths()) and w.unwatched > 0)
        failed = [e.path for e in events if e.kind == "watch_error"]
        assert failed and len(failed) == len(set(failed))      # once each, not per retry
        assert all("max_user_watches" in e.detail for e in events if e.kind == "watch_error")
        assert w.unwatched >= 1 and set(w.unwatched_paths()) <= set(failed)
        assert w.next_deadline() is not None
        assert set(w.unwatched_paths()).isdisjoint(w.path_wd)
    finally:
        LIMIT.write_text(f"{old}\n")
    unwatched = set(w.unwatched_paths())
    try:
        events = read_until(w, lambda _evs: w.unwatched == 0)   # the limit change is noticed
        got = {(e.kind, e.path) for e in events}
        for path in unwatched:
            assert ("rescan", path) in got
            assert ("write", f"{path}/seed" if path.endswith("sub") else f"{path}/sub/seed") in got
        kernel_agrees(w, root)
        for i in range(6):
            (root / f"d{i}" / "sub" / "later").write_bytes(b"y")
        later = {(e.kind, e.path) for e in settle(w, root)}
        assert later == {("write", f"d{i}/sub/later") for i in range(6)}
        assert w.watch_errors == len(failed)
    finally:
        w.close()
