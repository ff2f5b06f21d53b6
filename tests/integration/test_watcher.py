"""The watcher on a real tree, run unchanged against both backends (the `backend`
fixture: inotify, fanotify): what it reports for writes, renames, moves in and out, new
directories, deletes, hard links, symlinks, excluded paths, the root going away, and
that a full event queue or the watch limit is reported, never silent. Where a backend
has a behaviour the other lacks (inotify's watch per directory, rewatch and leaf
skipping; fanotify's lack of a watch limit) the test says so and expects it per backend.

Every wait is a bounded poll for an event; "nothing else was reported" is checked by
writing a sentinel file last and reading up to its event (both kernels keep order).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from tests.reliability.conftest import sysctl
from tests.watch_model import apply, disk, inotify_watches_in_use, nested, read_until
from tests.watch_model import settle as settle_removing_sentinel
from mirrord.watch.inotify import FsEvent, TreeWatcher
from tests.watch_backends import known_dirs


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "src"
    r.mkdir()
    return r


@pytest.fixture
def watcher(root, make_watcher):
    excluded = SourceConfig("up", root, ("t",), exclude=("*.tmp", ".*.swp", "cache")).excluded
    w = make_watcher(root, excluded)
    assert w.start() == []
    return w        # make_watcher closes it


_sentinels = iter(range(1_000_000))


def settle(w: TreeWatcher, root: Path) -> list[FsEvent]:
    """Every event for what was done so far (a sentinel write marks the end), sentinel removed,
    held MOVED_FROMs expired."""
    name = f"zz-sentinel-{next(_sentinels)}"
    (root / name).write_bytes(b"")
    events = read_until(w, lambda evs: any(e.path == name for e in evs))
    events += read_until(w, lambda _evs: not w.pending_moves)
    return [e for e in events if not e.path.startswith("zz-sentinel-")]


def kinds(events: list[FsEvent]) -> list[tuple]:
    return [(e.kind, e.path) + ((e.src,) if e.src else ()) for e in events]


# ------------------------------------------------------------------ writes


def test_a_file_is_reported_on_close_after_write_not_on_create(root, make_watcher):
    # quiet: a file modified and left open is reported once quiet (test_watch_shapes);
    # here the quiet window is longer than the test, so only the close reports it
    watcher = make_watcher(root, quiet=3600)
    watcher.start()
    fh = open(root / "f.jpg", "wb")
    fh.write(b"half")
    fh.flush()
    assert [e for e in watcher.read(100) if e.path == "f.jpg"] == []   # created and
    assert _settle_moves(watcher, root) == []       # written, not closed: nothing
    fh.write(b" and the rest")
    fh.close()
    assert kinds(settle(watcher, root)) == [("write", "f.jpg")]


def _settle_moves(w: TreeWatcher, root: Path) -> list[FsEvent]:
    """settle() without forcing quiet-pending files out: up to a sentinel's event."""
    name = f"zz-sentinel-{next(_sentinels)}"
    (root / name).write_bytes(b"")
    events = read_until(w, lambda evs: any(e.path == name for e in evs))
    return [e for e in events if not e.path.startswith("zz-sentinel-")]


def test_overwrite_in_place_is_a_write(watcher, root):
    (root / "f").write_bytes(b"1")
    settle(watcher, root)
    with open(root / "f", "r+b") as fh:
        fh.write(b"2")
    assert kinds(settle(watcher, root)) == [("write", "f")]


def test_write_temp_then_rename_reports_only_the_final_name(watcher, root):
    (root / "d").mkdir()
    settle(watcher, root)
    (root / "d" / "upload.tmp").write_bytes(b"image bytes")   # excluded while written
    os.rename(root / "d" / "upload.tmp", root / "d" / "photo.jpg")
    assert kinds(settle(watcher, root)) == [("write", "d/photo.jpg")]


def test_a_rename_into_an_excluded_name_is_a_delete(watcher, root):
    (root / "f").write_bytes(b"1")
    settle(watcher, root)
    os.rename(root / "f", root / "f.tmp")
    assert kinds(settle(watcher, root)) == [("delete", "f")]


def test_excluded_paths_are_never_reported(watcher, root):
    (root / "cache").mkdir()
    (root / "cache" / "x").write_bytes(b"1")
    (root / "a.tmp").write_bytes(b"1")
    (root / ".a.swp").write_bytes(b"1")
    (root / "sub").mkdir()
    (root / "sub" / "b.tmp").write_bytes(b"1")
    os.unlink(root / "a.tmp")
    assert kinds(settle(watcher, root)) == [("mkdir", "sub")]
    assert not {d for d in known_dirs(watcher) if d == "cache" or d.startswith("cache/")}


def test_a_hard_link_is_reported_on_create(watcher, root, tmp_path):
    (root / "orig").write_bytes(b"data")
    settle(watcher, root)
    os.link(root / "orig", root / "linked")
    events = settle(watcher, root)
    assert ("write", "linked") in kinds(events)
    assert all(e.path == "linked" for e in events)


# ------------------------------------------------------------------ renames and moves


def test_a_file_rename_inside_the_tree_is_a_move(watcher, root):
    (root / "a").mkdir()
    (root / "a" / "f").write_bytes(b"1")
    settle(watcher, root)
    os.rename(root / "a" / "f", root / "g")
    events = settle(watcher, root)
    assert events == [FsEvent("move", "g", src="a/f", is_dir=False)]


def test_a_directory_rename_is_a_move_and_its_watches_follow(watcher, root):
    (root / "d" / "s").mkdir(parents=True)
    (root / "d" / "s" / "f").write_bytes(b"1")
    settle(watcher, root)
    os.rename(root / "d", root / "e")
    assert settle(watcher, root) == [FsEvent("move", "e", src="d", is_dir=True)]
    (root / "e" / "s" / "new").write_bytes(b"2")
    os.rename(root / "e" / "s" / "f", root / "e" / "s" / "g")
    assert kinds(settle(watcher, root)) == [("write", "e/s/new"), ("move", "e/s/g", "e/s/f")]
    assert "e/s" in known_dirs(watcher) and "d/s" not in known_dirs(watcher)


def test_a_file_moved_out_of_the_tree_is_a_delete(watcher, root, tmp_path):
    (root / "f").write_bytes(b"1")
    settle(watcher, root)
    os.rename(root / "f", tmp_path / "outside")
    assert kinds(settle(watcher, root)) == [("delete", "f")]


def test_a_directory_moved_out_is_an_rmtree_and_no_longer_watched(watcher, root, tmp_path):
    (root / "d" / "s").mkdir(parents=True)
    settle(watcher, root)
    os.rename(root / "d", tmp_path / "away")
    events = settle(watcher, root)
    assert events == [FsEvent("rmtree", "d", is_dir=True)]
    (tmp_path / "away" / "s" / "later").write_bytes(b"x")   # outside now: never reported
    assert settle(watcher, root) == []
    assert not any(p == "d" or p.startswith("d/") for p in known_dirs(watcher))


def test_a_file_moved_in_is_a_write(watcher, root, tmp_path):
    (tmp_path / "incoming").write_bytes(b"1")
    os.rename(tmp_path / "incoming", root / "arrived")
    assert kinds(settle(watcher, root)) == [("write", "arrived")]


def test_a_directory_moved_in_is_mkdir_plus_its_contents_and_watched(watcher, root, tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a").write_bytes(b"1")
    (tmp_path / "pkg" / "sub" / "b").write_bytes(b"2")
    os.rename(tmp_path / "pkg", root / "pkg")
    got = set(kinds(settle(watcher, root)))
    assert got == {("mkdir", "pkg"), ("mkdir", "pkg/sub"), ("write", "pkg/a"),
                   ("write", "pkg/sub/b")}
    (root / "pkg" / "sub" / "c").write_bytes(b"3")
    assert kinds(settle(watcher, root)) == [("write", "pkg/sub/c")]


def test_files_written_before_a_new_directory_was_watched_are_reported(watcher, root):
    subprocess.run(["sh", "-c", "mkdir -p a/b/c && echo 1 > a/b/c/f && echo 2 > a/b/g "
                                "&& echo 3 > a/h && mkdir a/b/c/d && echo 4 > a/b/c/d/i"],
                   cwd=root, check=True)
    got = set(kinds(settle(watcher, root)))
    assert {("mkdir", "a"), ("mkdir", "a/b"), ("mkdir", "a/b/c"), ("mkdir", "a/b/c/d"),
            ("write", "a/b/c/f"), ("write", "a/b/g"), ("write", "a/h"),
            ("write", "a/b/c/d/i")} <= got
    assert {k for k, _p in got} <= {"mkdir", "write"}
    for d in ("a", "a/b", "a/b/c", "a/b/c/d"):
        assert d in known_dirs(watcher)


# ------------------------------------------------------------------ deletes


def test_deletes_are_reported(watcher, root):
    (root / "f").write_bytes(b"1")
    (root / "d" / "s").mkdir(parents=True)
    (root / "d" / "s" / "x").write_bytes(b"1")
    settle(watcher, root)
    os.unlink(root / "f")
    shutil.rmtree(root / "d")
    events = kinds(settle(watcher, root))
    assert events == [("delete", "f"), ("delete", "d/s/x"), ("rmtree", "d/s"), ("rmtree", "d")]
    assert known_dirs(watcher) == {""}


# ------------------------------------------------------------------ symlinks


def test_symlinks_are_never_followed(root, tmp_path, make_watcher, backend):
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "f").write_bytes(b"1")
    (root / "real").mkdir()
    (root / "link-at-start").symlink_to(outside)
    w = make_watcher(root)
    # inotify watches every directory at start; fanotify learns a directory's path on its
    # first event, so it may know fewer: never one reached through a symlink
    if backend == "inotify":
        same = lambda: known_dirs(w) == {"", "real"}        # noqa: E731
    else:
        same = lambda: known_dirs(w) <= {"", "real"}        # noqa: E731
    assert w.start() == []
    assert same()
    (root / "real" / "link-later").symlink_to(outside)
    (outside / "g").write_bytes(b"2")
    (outside / "deep" / "h").write_bytes(b"3")
    assert settle(w, root) == []
    assert same()
    # a symlink renamed in from outside is reported (the shipper treats it as absent)
    # but never watched or scanned
    os.symlink(outside, tmp_path / "lnk")
    os.rename(tmp_path / "lnk", root / "moved-link")
    events = settle(w, root)
    assert all(e.path == "moved-link" for e in events)
    assert same()


def test_rewatch_adds_a_watch_that_went_missing(root):
    """inotify only: a watch per directory can be lost one by one (rm_watch, a watch
    removed behind the watcher's back). fanotify has one mark for the whole file system
    and rewatch() has nothing to do (tests/integration/test_fanotify.py checks it)."""
    (root / "d" / "e").mkdir(parents=True)
    w = TreeWatcher(str(root))
    try:
        w.start()
        assert set(w.path_wd) == {"", "d", "d/e"}
        w.inotify.rm_watch(w.path_wd["d/e"])        # lost behind the watcher's back
        read_until(w, lambda _evs: "d/e" not in w.path_wd)
        assert w.rewatch() == []
        assert set(w.path_wd) == {"", "d", "d/e"} and w.watched == 3
        (root / "d" / "e" / "f").write_bytes(b"1")
        assert kinds(settle(w, root)) == [("write", "d/e/f")]
    finally:
        w.close()


@pytest.mark.parametrize("how", ["moved", "deleted"])
def test_the_root_going_away_is_reported(root, tmp_path, make_watcher, how):
    w = make_watcher(root)
    w.start()
    if how == "moved":
        os.rename(root, tmp_path / "moved-root")
    else:
        root.rmdir()
    events = read_until(w, lambda evs: any(e.kind == "lost" for e in evs))
    assert any(e.kind == "lost" and e.path == "" for e in events)


# ------------------------------------------------------------------ limits (global sysctls)



@pytest.mark.serial
def test_queue_overflow_is_reported(root, make_watcher, backend):
    # inotify: the queue size is fixed when the instance is created: lower it only for
    # that. fanotify: a bounded queue (what a process without CAP_SYS_ADMIN gets instead
    # of FAN_UNLIMITED_QUEUE) holds 16,384 events (fs.fanotify.max_queued_events)
    if backend == "inotify":
        with sysctl("max_queued_events", 32):
            w = make_watcher(root)
        n = 200
    else:
        w = make_watcher(root, unlimited_queue=False)
        assert not w.unlimited
        n = 20_000
    w.start()
    for i in range(n):                   # far more events than the queue holds, unread
        (root / f"f{i}").write_bytes(b"x")
    events = read_until(w, lambda evs: any(e.kind == "overflow" for e in evs))
    assert w.overflows >= 1
    ev = next(e for e in events if e.kind == "overflow")
    assert "max_queued_events" in ev.detail
    # the watches (the mark) are still in place after an overflow
    assert w.rewatch() == []
    (root / "after").write_bytes(b"y")
    read_until(w, lambda evs: any(e.path == "after" for e in evs))



@pytest.mark.serial
def test_hitting_the_watch_limit_is_reported_never_silent(root):
    """inotify only (fanotify has no per-directory watch: see the new-directory case above
    and tests/reliability/test_fanotify_watch_limit.py)."""
    for i in range(12):
        (root / f"d{i}" / "sub").mkdir(parents=True)
    w = TreeWatcher(str(root))
    try:
        limit = inotify_watches_in_use() + 3
        with sysctl("max_user_watches", limit):
            events = w.start()
        errors = [e for e in events if e.kind == "watch_error"]
        assert errors, f"no watch_error with max_user_watches={limit}; watched {w.watched}"
        assert w.watch_errors == len(errors)
        assert all("max_user_watches" in e.detail for e in errors)
        unwatched = {e.path for e in errors}
        assert unwatched.isdisjoint(w.path_wd)
        for d in (f"d{i}" for i in range(12)):   # each directory is watched, or reported
            assert d in w.path_wd or d in unwatched   # (with everything below it)
            if f"{d}/sub" not in w.path_wd:
                assert d in unwatched or f"{d}/sub" in unwatched
        assert w.rewatch() == []                 # limit restored: everything gets its watch
        assert w.watched == 25
    finally:
        w.close()


@pytest.mark.serial
def test_the_watch_limit_on_a_new_directory_is_reported(root, make_watcher, backend):
    """inotify needs a watch per directory: at the limit a new one is a watch_error.
    fanotify's one mark is not counted against fs.inotify.max_user_watches: the new
    directory is a mkdir and what is written in it is seen (the point of issue 18)."""
    w = make_watcher(root)
    w.start()
    limit = inotify_watches_in_use()
    with sysctl("max_user_watches", limit):
        (root / "new").mkdir()
        events = read_until(w, lambda evs: any(e.kind in ("watch_error", "mkdir")
                                               for e in evs))
        if backend == "fanotify":
            (root / "new" / "f").write_bytes(b"1")
            events += settle(w, root)
    if backend == "inotify":
        assert [e.kind for e in events if e.path == "new"] == ["watch_error"]
        assert w.watch_errors == 1
    else:
        assert kinds(events) == [("mkdir", "new"), ("write", "new/f")]
        assert w.watch_errors == 0 and w.unwatched == 0


# ------------------------------------------------------------------ a flood of events


def one_event_or_buffer_per_call(backend: str, monkeypatch) -> None:
    """READ_BUDGET 0: each read() call handles one event (inotify) or one 256 KiB buffer
    of events (fanotify) and leaves the rest for the next calls."""
    from mirrord.watch import fanotify, inotify
    monkeypatch.setattr(inotify if backend == "inotify" else fanotify, "READ_BUDGET", 0.0)


def test_a_read_call_stops_at_its_time_budget_and_the_rest_follows(watcher, root, backend,
                                                                   monkeypatch):
    """A storm of directory exchanges among writes held one call, and the daemon's main
    loop with it, ~2 minutes (inotify) and ~96 s (fanotify): a call now stops after
    READ_BUDGET seconds of handling, and the next calls hand back the rest, nothing lost."""
    one_event_or_buffer_per_call(backend, monkeypatch)
    names = [f"f{i:05d}-{'n' * 150}.jpg" for i in range(3000)]   # > one buffer of events
    for name in names:
        (root / name).write_bytes(b"")
    first = watcher.read(0)
    assert len({e.path for e in first}) < len(names), len(first)
    got = {e.path for e in first if e.kind == "write"}
    for _ in range(20_000):
        got |= {e.path for e in watcher.read(100) if e.kind == "write"}
        if got >= set(names):
            break
    assert got >= set(names), len(set(names) - got)


def test_a_watcher_reading_behind_says_since_when_until_it_drains(watcher, root, backend,
                                                                 monkeypatch):
    """read_lag (mirrord.watch.read_lag) on the real kernel: a call that leaves events
    queued starts the count, later calls still behind keep its start, and the call that
    finds the queue empty ends it. The target states read it: pending 0 is not caught up
    while it runs (tests/unit/test_target_state.py)."""
    one_event_or_buffer_per_call(backend, monkeypatch)
    assert watcher.read(0) == [] and watcher.read_lag.since is None
    for i in range(3000):
        (root / f"f{i:05d}-{'n' * 150}.jpg").write_bytes(b"")
    watcher.read(0)
    since = watcher.read_lag.since
    assert since is not None and watcher.read_lag.seconds() >= 0.0
    watcher.read(0)
    assert watcher.read_lag.since == since     # still behind: counted from the first call
    for _ in range(20_000):
        watcher.read(0)
        if watcher.read_lag.since is None:
            break
    assert watcher.read_lag.since is None and watcher.read_lag.seconds() == 0.0


def test_renames_split_across_read_calls_are_still_moves(watcher, root, backend, monkeypatch):
    """A rename's two inotify events handled by two calls are paired all the same (the
    unpaired MOVED_FROM does not expire while events wait in the backlog), and what the
    events say, applied to a target, is the tree."""
    n = 40
    for i in range(n):
        (root / f"d{i:02}").mkdir()
        (root / f"d{i:02}" / "in.jpg").write_bytes(b"in")
        (root / f"f{i:02}.jpg").write_bytes(b"file")
    settle_removing_sentinel(watcher, root)
    model = disk(root)
    one_event_or_buffer_per_call(backend, monkeypatch)
    subprocess.run(["sh", "-c", "for i in $(seq -w 0 39); do mv f$i.jpg g$i.jpg; "
                    "mv d$i e$i; echo new > e$i/new.jpg; done"], cwd=root, check=True)
    events = settle_removing_sentinel(watcher, root)
    assert apply(model, events, root) == disk(root)
    moves = {(e.path, e.src) for e in events if e.kind == "move"}
    assert moves >= {(f"g{i:02}.jpg", f"f{i:02}.jpg") for i in range(n)} | {
        (f"e{i:02}", f"d{i:02}") for i in range(n)}, kinds(events)
    assert not [e for e in events if e.kind in ("delete", "rmtree")], kinds(events)


# ------------------------------------------------------------------ start-up on big trees

def _tree_with_leaves(root: Path) -> set[str]:
    dirs = {"", "a", "a/x", "a/y", "b", "b/z", "b/z/deep", "c"}
    for d in dirs - {""}:
        (root / d).mkdir(parents=True, exist_ok=True)
    for d in dirs:
        for i in range(3):
            (root / d / f"f{i}").write_bytes(b"x")
    return dirs


def test_start_watches_every_directory_and_lists_no_leaf_where_link_counts_are_trusted(root):
    """inotify only: fanotify places one mark and walks nothing at start (its
    leaves_skipped stays 0; tests/integration/test_fanotify.py)."""
    from mirrord.fsutil import counts_subdirs_in_nlink
    dirs = _tree_with_leaves(root)
    w = TreeWatcher(str(root))
    try:
        assert w.start() == []
        assert set(w.path_wd) == dirs
        leaves = {"a/x", "a/y", "b/z/deep", "c"}
        # the test machine's /tmp is ext4 or tmpfs; anywhere else the walk lists every directory
        assert w.leaves_skipped == (len(leaves) if counts_subdirs_in_nlink(str(root)) else 0)
        # a directory made inside a leaf after start is still watched, through its event
        (root / "c" / "new").mkdir()
        (root / "c" / "new" / "g").write_bytes(b"1")
        events = settle(w, root)
        assert ("mkdir", "c/new") in kinds(events) and "c/new" in w.path_wd
        (root / "c" / "new" / "h").write_bytes(b"2")
        assert kinds(settle(w, root)) == [("write", "c/new/h")]
    finally:
        w.close()


def test_where_link_counts_are_not_trusted_every_directory_is_listed(root, monkeypatch):
    import mirrord.watch.placing as placing_mod
    monkeypatch.setattr(placing_mod, "counts_subdirs_in_nlink", lambda _p: False)
    dirs = _tree_with_leaves(root)
    w = TreeWatcher(str(root))
    try:
        assert w.start() == [] and set(w.path_wd) == dirs and w.leaves_skipped == 0
    finally:
        w.close()


def test_a_leaf_with_a_lying_link_count_on_another_device_is_still_listed(root, monkeypatch):
    """A directory on another device (a mount inside the tree) is always listed: only
    the root's own file system was checked. Simulated with the device check alone, on a
    root whose link counts are taken as trusted whatever this machine's /tmp is."""
    import mirrord.watch.placing as placing_mod
    monkeypatch.setattr(placing_mod, "counts_subdirs_in_nlink", lambda _p: True)
    dirs = _tree_with_leaves(root)
    w = TreeWatcher(str(root))
    try:
        assert w._leaf_dev == os.stat(root).st_dev
        w._leaf_dev = w._leaf_dev + 1   # as if every directory were on another device
        assert w.start() == [] and set(w.path_wd) == dirs and w.leaves_skipped == 0
    finally:
        w.close()


def test_a_directory_deeper_than_path_max_is_watched_and_heard(watcher, root):
    """20 nested directories of 250-byte names, past PATH_MAX (4,096 bytes): inotify's
    add_watch and listing by path failed with ENAMETOOLONG and were retried for good, the
    source `degraded` forever though the rescans brought its files (a trial). They go
    through the parent's descriptor now (mirrord.watch.longpaths); a write at the bottom
    is heard live, with either backend."""
    part = "L" * 250
    fd = nested(root, part, 20)
    try:
        made = [p for k, p in kinds(settle(watcher, root)) if k == "mkdir"]
        assert made == ["/".join([part] * n) for n in range(1, 21)]   # every level, in order
        assert watcher.unwatched == 0
        made = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(made, b"deep")
        os.close(made)
    finally:
        os.close(fd)
    deep = "/".join([part] * 20) + "/deep.jpg"
    assert len(deep) > 4096
    assert ("write", deep) in kinds(settle(watcher, root))
    assert watcher.unwatched == 0
