"""Test helpers for the watcher: what a target would hold after applying a stream of
FsEvents (a state-based model of the daemon), what stands on disk, and the watcher's
tree compared with the real directories."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mirrord.watch.events import FsEvent


def disk(root: Path, below: str = "") -> set[str]:
    """Every file and directory below root/below (relative paths), root itself excluded."""
    out = set()
    top = root / below if below else root
    if not os.path.isdir(top) or os.path.islink(top):
        return out
    for cur, dirs, files in os.walk(top):
        rel = os.path.relpath(cur, root)
        rel = "" if rel == "." else rel
        for name in dirs + files:
            out.add(f"{rel}/{name}" if rel else name)
    return out


def _under(paths: set[str], top: str) -> set[str]:
    return {p for p in paths if p == top or p.startswith(top + "/")}


def apply(model: set[str], events: list[FsEvent], root: Path) -> set[str]:
    """The target's paths after `events`, as the state-based daemon would apply them
    (a write or mkdir of a path that is gone deletes it, as the shipper looks at the
    source when it runs; deletes are applied blindly, so their order matters; a rescan
    copies the truth below its path, and a directory or nothing at the path itself)."""
    model = set(model)
    pending: set[str] = set()       # paths with work queued in this batch
    for e in events:
        if e.kind in ("write", "mkdir"):
            if os.path.lexists(root / e.path):
                model.add(e.path)
            else:
                model -= _under(model, e.path)
        elif e.kind == "delete":       # strict: a delete after a newer write loses the file
            model.discard(e.path)
        elif e.kind == "rmtree":
            model -= _under(model, e.path)
        elif e.kind == "move" and (_under(pending, e.src) or _under(pending, e.path)
                                   or e.src not in model):
            # the journal keeps a move only with no work pending at src or dst; else the
            # daemon deletes src and scans dst (Journal.enqueue_move); a move whose src the
            # target lacks is shipped from the source, which the shipper looks at
            model -= _under(model, e.src)
            model = (model - _under(model, e.path)) | disk(root, e.path) | (
                {e.path} if os.path.lexists(root / e.path) else set())
        elif e.kind == "move":
            moved = _under(model, e.src)
            model -= moved
            model -= _under(model, e.path)
            model |= {e.path + p[len(e.src):] for p in moved}
        elif e.kind == "rescan":
            # a subtree check compares only what is strictly below the path
            # (journal.iter_shipped with a prefix): a file standing at the path now (renamed
            # over the emptied directory) is the business of its own events, kept as is
            below = _under(model, e.path) - {e.path}
            model = (model - below) | disk(root, e.path)
            if os.path.isdir(root / e.path) and not os.path.islink(root / e.path):
                model.add(e.path)
            elif not os.path.lexists(root / e.path):
                model.discard(e.path)
        pending.add(e.path)
    return model


def real_dirs(root: Path) -> set[str]:
    return {""} | {p for p in disk(root) if os.path.isdir(root / p) and not os.path.islink(root / p)}


def read_until(w, done, *, seconds: float = 30.0) -> list[FsEvent]:
    """Read events until `done(events)` holds (a bounded poll on wall time: fanotify's
    mark sees the whole file system, so read(100) may return at once, many times)."""
    events: list[FsEvent] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events += w.read(100)
        if done(events):
            return events
    raise AssertionError(f"expected event never came; got {events}")


_sentinels = iter(range(1_000_000))


def settle(w, root: Path) -> list[FsEvent]:
    """Every event for what was done so far (a sentinel write marks the end, inotify
    keeps order), then held MOVED_FROMs and quiet-pending files settled; sentinels left out."""
    name = f"zz-sentinel-{next(_sentinels)}"
    (root / name).write_bytes(b"")
    events = read_until(w, lambda evs: any(e.path == name for e in evs))
    os.unlink(root / name)
    events += read_until(w, lambda evs: any(e.path == name and e.kind == "delete" for e in evs))
    events += w.settle()
    return [e for e in events if not e.path.startswith("zz-sentinel-")]


def kernel_agrees(w, root: Path) -> None:
    """The watcher's tree is the real tree and each wd watches that very inode:
    inotify_add_watch(2) on a watched inode returns its existing wd (inotify(7))."""
    from mirrord.watch.inotify import WATCH_MASK
    assert set(w.path_wd) == real_dirs(root)
    for rel, wd in w.path_wd.items():
        assert w.inotify.add_watch(os.fsencode(root / rel if rel else root), WATCH_MASK) == wd, rel
    assert all(w.tree.path(n) is not None for n in w.tree.by_wd.values())


def inotify_watches_in_use(uid: int | None = None) -> int:
    """inotify watches held right now (by processes of `uid`, when given: the limit
    fs.inotify.max_user_watches is per user), counted from /proc/PID/fdinfo."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if uid is not None and os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                    total += sum(line.startswith("inotify wd:") for line in fh)
        except OSError:
            continue
    return total


def nested(root, part: str, levels: int) -> int:
    """Make `levels` directories named `part`, each in the one before, below `root`, by
    descriptor (mkdirat: the path may grow past PATH_MAX); returns a descriptor of the
    deepest, which the caller closes."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        os.mkdir(part, dir_fd=fd)
        nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd
