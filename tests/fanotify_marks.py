"""Helpers for the fanotify watcher's tests on the real kernel: a root where fanotify
must be available (it fails, never skips, when it is not) and a started watcher that
counts the events read per directory handle, the measure of what its kernel ignore
marks (mirrord/watch/fanotify_ignore.py) stop."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mirrord.config import SourceConfig
from mirrord.watch import fanotify_sys as S
from mirrord.watch.fanotify import FanotifyWatcher, fanotify_available


def fanotify_root(tmp_path: Path) -> Path:
    """tmp_path/src, made; AssertionError with the reason when fanotify cannot watch it."""
    r = tmp_path / "src"
    r.mkdir()
    ok, why = fanotify_available(str(r))
    assert ok, f"fanotify is not available here: {why}"
    return r


def counting_watcher(root: Path, exclude=("cache",), **kw) -> FanotifyWatcher:
    """A started FanotifyWatcher whose `read_from` Counter maps each directory handle to
    the events read that name it (counted at _translate, which every event goes through)."""
    excluded = SourceConfig("up", root, ("t",), exclude=exclude).excluded
    w = FanotifyWatcher(str(root), excluded, **kw)
    assert w.start() == []
    w.read_from = Counter()
    translate = w._translate

    def counting(ev, out):
        w.read_from[ev.dfid] += 1
        translate(ev, out)
    w._translate = counting
    return w


def handle(path: Path) -> bytes:
    return S.name_to_handle(str(path))


def kinds(events) -> set[tuple]:
    return {(e.kind, e.path) for e in events}


def write_many(d: Path, n: int) -> None:
    """n appends and closes over 20 files in `d`."""
    for i in range(n):
        with open(d / f"f{i % 20}", "ab") as f:
            f.write(b"x" * 100)
