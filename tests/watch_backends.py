"""The two watcher backends behind one test fixture: build either with the same call, and
check that a backend's own map of the tree agrees with the kernel.

The scenario suite (tests/integration/test_watch_shapes.py, test_watcher.py,
test_watch_hypothesis.py) takes `make_watcher` from tests/integration/conftest.py and
runs unchanged against inotify (TreeWatcher: one watch per directory) and fanotify
(FanotifyWatcher: one mark on the file system). When fanotify is not available here
the fanotify cases fail with the reason; they never skip (issue 18).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from mirrord.watch import fanotify_sys as S
from mirrord.watch.fanotify import FanotifyWatcher, fanotify_available
from mirrord.watch.inotify import TreeWatcher

BACKENDS = ("inotify", "fanotify")


def watcher_class(backend: str) -> type:
    return {"inotify": TreeWatcher, "fanotify": FanotifyWatcher}[backend]


def make(backend: str, root: Path | str, excluded: Callable[[str], bool] | None = None,
         **kw):
    """A watcher of `backend` on `root` (not started). Keyword arguments both backends
    take: quiet, clock, move_window; others are the backend's own. AssertionError with
    the reason when fanotify is asked for and is not available here."""
    if backend == "fanotify":
        ok, why = fanotify_available(str(root))
        assert ok, f"fanotify is not available here: {why}"
    return watcher_class(backend)(str(root), excluded, **kw)


def agrees(w, root: Path) -> None:
    """The backend's map of the tree is the kernel's. inotify: every directory watched, each
    wd on that very inode (tests/watch_model.kernel_agrees). fanotify: every directory handle
    cached with a path resolves, through open_by_handle_at(2), to that very path; nothing
    is left modified-without-close after a settle; the root was not lost."""
    from tests.watch_model import kernel_agrees
    if isinstance(w, TreeWatcher):
        kernel_agrees(w, root)
        return
    assert not w.modified and not w.identity.lost
    mount_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for handle, rel in w.paths.dirs.items():
            if rel is None or w.paths.is_root_or_above(handle):
                continue
            path = S.handle_path(mount_fd, handle)
            if path is None:
                continue        # deleted since: a handle is never reused (inode generation)
            assert path == os.path.join(os.path.abspath(root), rel), (rel, path)
    finally:
        os.close(mount_fd)


def known_dirs(w) -> set[str]:
    """The directories below the root the backend holds a place for. inotify: those with a
    watch. fanotify: those whose handle is cached with a path (everything is seen through
    the one mark; the cache only saves lookups), so a subset of the tree."""
    if isinstance(w, TreeWatcher):
        return set(w.path_wd)
    return {rel for rel in w.paths.dirs.values() if rel is not None}
