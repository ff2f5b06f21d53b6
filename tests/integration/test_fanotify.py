"""The fanotify watcher on the real kernel: each kind of change below a root in a tmp dir,
that changes elsewhere on the same file system are not reported, that the root going
away is "lost", that a bounded queue's overflow is reported, and the CPU cost per create
next to the inotify TreeWatcher's (printed, not asserted).

The filesystem mark sees the whole machine (other tests, SQLite), so waits are bounded
polls on wall time, and "nothing else was reported" is checked by writing a sentinel
file last and reading up to its event (the queue keeps order). When fanotify is not
available here the tests fail with the reason; they never skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.watch.events import FsEvent
from mirrord.watch.fanotify import FanotifyWatcher, fanotify_available
from mirrord.watch.inotify import TreeWatcher
from tests.fanotify_marks import fanotify_root
from tests.watch_model import nested, read_until


@pytest.fixture
def root(tmp_path) -> Path:
    return fanotify_root(tmp_path)


@pytest.fixture
def watcher(root):
    excluded = SourceConfig("up", root, ("t",), exclude=("*.tmp", "cache")).excluded
    w = FanotifyWatcher(str(root), excluded)
    assert w.start() == []
    yield w
    w.close()


_sentinels = iter(range(1_000_000))


def settle(w, root: Path, *, quiet: bool = True) -> list[FsEvent]:
    """Every event for what was done so far, sentinel removed; with quiet, files modified
    without a close are waited for until they are due as writes."""
    name = f"zz-sentinel-{next(_sentinels)}"
    (root / name).write_bytes(b"")
    events = read_until(w, lambda evs: any(e.path == name for e in evs))
    os.unlink(root / name)
    events += read_until(w, lambda evs: any(e.path == name and e.kind == "delete" for e in evs))
    if quiet:
        events += read_until(w, lambda _evs: not w.modified)
    return [e for e in events if not e.path.startswith("zz-sentinel-")]


def kinds(events: list[FsEvent]) -> list[tuple]:
    return [(e.kind, e.path) + ((e.src,) if e.src else ()) for e in events]


def test_api_matches_the_inotify_watcher(watcher):
    assert (watcher.watched, watcher.unwatched, watcher.unwatched_paths(10)) == (1, 0, [])
    assert watcher.rewatch() == []
    assert watcher.next_deadline() == pytest.approx(time.monotonic() + 1.0, abs=1.0)
    assert isinstance(watcher.fileno(), int) and watcher.unlimited


def test_write_is_reported_on_close_not_on_create(watcher, root):
    fh = open(root / "f.jpg", "wb")
    fh.write(b"half")
    fh.flush()
    assert kinds(settle(watcher, root, quiet=False)) == []     # written, still open: held
    assert list(watcher.modified) == ["f.jpg"] and watcher.next_deadline() is not None
    fh.write(b" rest")
    fh.close()
    assert kinds(settle(watcher, root)) == [("write", "f.jpg")]


def test_a_file_modified_without_close_is_a_write_once_quiet(watcher, root):
    fh = open(root / "log.txt", "wb")
    fh.write(b"x")
    fh.flush()
    events = read_until(watcher, lambda evs: ("write", "log.txt") in kinds(evs))
    assert kinds(events) == [("write", "log.txt")]
    fh.close()


def test_rename_within_is_a_move(watcher, root):
    (root / "a.tmp").write_bytes(b"x")
    (root / "b.jpg").write_bytes(b"y")
    settle(watcher, root)
    (root / "b.jpg").rename(root / "c.jpg")
    (root / "a.tmp").rename(root / "a.jpg")             # from an excluded name: a create
    assert kinds(settle(watcher, root)) == [("move", "c.jpg", "b.jpg"), ("write", "a.jpg")]


def test_directory_rename_then_writes_inside_use_the_new_path(watcher, root):
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "e" / "f").write_bytes(b"1")
    settle(watcher, root)
    (root / "d").rename(root / "n")
    (root / "n" / "e" / "g").write_bytes(b"2")
    (root / "n" / "e" / "f").write_bytes(b"3")
    assert kinds(settle(watcher, root)) == [("move", "n", "d"), ("write", "n/e/g"),
                                            ("write", "n/e/f")]


def test_mkdir_and_rename_at_once_then_write_inside(watcher, root):
    (root / "new").mkdir()
    (root / "new").rename(root / "final")
    (root / "final" / "x.jpg").write_bytes(b"1")
    got = kinds(settle(watcher, root))
    assert ("write", "final/x.jpg") in got and got[-1] == ("write", "final/x.jpg")
    assert not [k for k in got if k[1].startswith("new/")]


def test_a_tree_copied_in_reports_each_file_once(watcher, root, tmp_path):
    """`cp -r` of a tree made before a single event is read: one mkdir per directory and
    one write per file, from each file's own close. The new directories were scanned when
    their FAN_CREATE was read, and every file found there was reported again at its close:
    2 to 3 writes per file on the S3 burst (15% of the daemon's CPU)."""
    stage = tmp_path / "stage"
    files = [f"tree/{a}/{b}/f{i}.jpg" for a in "xy" for b in ("0", "1", "2") for i in range(8)]
    for rel in files:
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage / rel).write_bytes(b"x" * 100)
    subprocess.run(["cp", "-r", str(stage / "tree"), str(root / "tree")], check=True)
    got = kinds(settle(watcher, root))
    assert sorted(p for k, p in got if k == "write") == sorted(files)
    dirs = {"tree"} | {f"tree/{a}" for a in "xy"} | {str(Path(f).parent) for f in files}
    assert sorted(p for k, p in got if k == "mkdir") == sorted(dirs)
    assert {k for k, _ in got} == {"mkdir", "write"}


def test_move_in_from_outside_reports_the_contents(watcher, root, tmp_path):
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "a.jpg").write_bytes(b"a")
    (tmp_path / "lone.jpg").write_bytes(b"b")
    (outside).rename(root / "in")
    (tmp_path / "lone.jpg").rename(root / "lone.jpg")
    got = kinds(settle(watcher, root))
    # events from before the move resolve against today's path, so some may come twice; no
    # rescan: a directory removed elsewhere on the file system meanwhile no longer asks for
    # one (tests/integration/test_fanotify_renames_delayed.py)
    assert set(got) == {("mkdir", "in"), ("mkdir", "in/sub"), ("write", "in/sub/a.jpg"),
                        ("write", "lone.jpg")}


def test_move_out_is_delete_or_rmtree(watcher, root, tmp_path):
    (root / "d").mkdir()
    (root / "d" / "f").write_bytes(b"1")
    (root / "g").write_bytes(b"2")
    settle(watcher, root)
    (root / "d").rename(tmp_path / "d-out")
    (root / "g").rename(tmp_path / "g-out")
    (tmp_path / "d-out" / "f").write_bytes(b"outside now")
    assert kinds(settle(watcher, root)) == [("rmtree", "d"), ("delete", "g")]


def test_delete_and_rmtree(watcher, root):
    (root / "t" / "u").mkdir(parents=True)
    (root / "t" / "u" / "f").write_bytes(b"1")
    (root / "g").write_bytes(b"2")
    settle(watcher, root)
    (root / "g").unlink()
    shutil.rmtree(root / "t")
    got = kinds(settle(watcher, root))
    assert got == [("delete", "g"), ("delete", "t/u/f"), ("rmtree", "t/u"), ("rmtree", "t")]
    assert "t" not in watcher.paths.dirs.values() and "t/u" not in watcher.paths.dirs.values()


def test_chmod_and_utime_are_attr(watcher, root):
    (root / "f").write_bytes(b"1")
    settle(watcher, root)
    os.chmod(root / "f", 0o600)
    assert kinds(settle(watcher, root)) == [("attr", "f")]
    os.utime(root / "f", (1_000_000, 1_000_000))
    assert kinds(settle(watcher, root)) == [("attr", "f")]


def test_truncate_by_path_is_a_write(watcher, root):
    (root / "f").write_bytes(b"123456")
    settle(watcher, root)
    os.truncate(root / "f", 2)
    assert kinds(settle(watcher, root)) == [("write", "f")]


def test_hard_link_is_a_write(watcher, root):
    (root / "f").write_bytes(b"123")
    settle(watcher, root)
    os.link(root / "f", root / "h")
    got = settle(watcher, root)
    assert kinds(got) == [("write", "h")] and got[0].size == 3


def test_excluded_paths_are_not_reported(watcher, root):
    (root / "cache").mkdir()
    (root / "cache" / "c.jpg").write_bytes(b"1")
    (root / "x.tmp").write_bytes(b"1")
    assert kinds(settle(watcher, root)) == []


def test_events_elsewhere_on_the_file_system_are_not_reported(watcher, root, tmp_path):
    sibling = tmp_path / "sibling"
    sibling.mkdir()
    dropped, resolved, resolve = watcher.dropped, [], watcher.paths._resolve
    watcher.paths._resolve = lambda h: resolved.append(resolve(h)) or resolved[-1]   # a spy
    for d in range(20):
        (sibling / str(d)).mkdir()
        for i in range(100):
            (sibling / str(d) / f"{i}.jpg").write_bytes(b"x" * 100)
            os.rename(sibling / str(d) / f"{i}.jpg", sibling / str(d) / f"{i}.png")
    assert kinds(settle(watcher, root)) == []
    # all 4,000 writes and renames reached the watcher and were dropped; the sibling's
    # directories came with their FAN_CREATE and were cached as outside, so not one of
    # them cost a handle lookup (other programs' directories may)
    assert watcher.dropped - dropped >= 4000
    assert [p for p in resolved if p and p.startswith(str(sibling))] == []


PROBE = ("from mirrord.watch.fanotify_probe import fanotify_available, open_group; "
         "import sys; print(fanotify_available(sys.argv[1])[1]); print(open_group()[1])")


@pytest.mark.parametrize("setpriv, reason, unlimited", [
    (["--bounding-set=-sys_admin", "--inh-caps=-all"], "(needs CAP_SYS_ADMIN)", "False"),
    (["--bounding-set=-dac_read_search", "--inh-caps=-all"], "(needs CAP_DAC_READ_SEARCH)",
     "True"),
    (["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
      "--bounding-set=-all"], "(needs CAP_SYS_ADMIN)", "False"),
])
def test_available_names_the_missing_capability(root, setpriv, reason, unlimited):
    """A real process without the capability (setpriv), not a patched errno; without
    CAP_SYS_ADMIN the group falls back to a bounded queue (unprivileged fanotify)."""
    proc = subprocess.run(["setpriv", *setpriv, sys.executable, "-c", PROBE, str(root)],
                          capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parents[2])
    lines = proc.stdout.splitlines()
    assert lines[0].endswith(reason) and lines[1] == unlimited, proc.stdout


def test_root_moved_or_deleted_is_lost(tmp_path):
    for how in ("move", "delete"):
        r = tmp_path / how
        r.mkdir()
        w = FanotifyWatcher(str(r))
        w.start()
        if how == "move":
            r.rename(tmp_path / "moved")
        else:
            r.rmdir()
        got = read_until(w, lambda evs: any(e.kind == "lost" for e in evs))
        w.close()
        assert [e.kind for e in got] == ["lost"]


@contextlib.contextmanager
def tmpfs(path: Path):
    subprocess.run(["mount", "-t", "tmpfs", "mirrord-test", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_mount_below_the_root_is_reported_unwatched(watcher, root):
    (root / "m").mkdir()
    w = FanotifyWatcher(str(root))
    try:
        with tmpfs(root / "m"):
            got = w.start()
            assert [(e.kind, e.path) for e in got] == [("watch_error", "m")]
            assert (w.unwatched, w.unwatched_paths(5), w.watch_errors) == (1, ["m"], 1)
    finally:
        w.close()


def test_root_unmounted_is_lost(tmp_path):
    (tmp_path / "mnt").mkdir()
    with tmpfs(tmp_path / "mnt") as mnt:
        ok, why = fanotify_available(str(mnt))
        assert ok, why
        w = FanotifyWatcher(str(mnt), root_check=0.1)
        w.start()
        (mnt / "f").write_bytes(b"1")
        assert kinds(read_until(w, lambda evs: evs)) == [("write", "f")]
        subprocess.run(["umount", str(mnt)], check=True)
        got = read_until(w, lambda evs: evs)
        w.close()
    assert [e.kind for e in got] == ["lost"] and "unmounted" in got[0].detail


def test_bounded_queue_overflow_is_reported(tmp_path, root):
    w = FanotifyWatcher(str(root), unlimited_queue=False)
    w.start()
    try:
        busy = tmp_path / "busy"        # 20,000 distinct files: more than the 16,384 queued
        busy.mkdir()
        for i in range(20_000):
            (busy / str(i)).write_bytes(b"")
        got = read_until(w, lambda evs: any(e.kind == "overflow" for e in evs))
        assert w.overflows >= 1 and not w.unlimited
        assert [e for e in got if e.kind != "overflow"] == []
    finally:
        w.close()


def _cpu_per_create(w, root: Path, n: int) -> str:
    """CPU microseconds spent in read() per create (plus, for fanotify, how many events
    from elsewhere on the file system it read and dropped in the same time)."""
    for d in range(10):
        (root / f"d{d}").mkdir()
    w.read(200)
    for i in range(n):
        (root / f"d{i % 10}" / f"{i}.jpg").write_bytes(b"x")
    seen: set[str] = set()
    dropped = getattr(w, "dropped", 0)
    start = time.process_time()
    deadline = time.monotonic() + 60
    while len(seen) < n and time.monotonic() < deadline:
        seen.update(e.path for e in w.read(100) if e.kind == "write")
    used = time.process_time() - start
    assert len(seen) == n
    foreign = getattr(w, "dropped", 0) - dropped
    return f"{used / n * 1e6:.1f}" + (f" ({foreign} foreign events)" if foreign else "")


def test_cpu_per_create_against_inotify(tmp_path, capsys):
    n = 5000
    results: dict[str, list[str]] = {}
    for name, cls in (("inotify", TreeWatcher), ("fanotify", FanotifyWatcher)) * 2:
        r = tmp_path / f"{name}-{len(results.get(name, []))}"
        r.mkdir()
        w = cls(str(r))
        w.start()
        try:
            results.setdefault(name, []).append(_cpu_per_create(w, r, n))
        finally:
            w.close()
    with capsys.disabled():
        for name, runs in results.items():
            print(f"\n{name}: CPU us per create in read(): " + ", ".join(runs))


def _shapes(root: Path, out: Path):
    """Steps mixing every rename shape; each leaves the tree in a state to compare."""
    r = root
    yield lambda: [(r / "a" / "b" / "c").mkdir(parents=True), (r / "a" / "f").write_bytes(b"1"),
                   (r / "a" / "b" / "c" / "g").write_bytes(b"2")]
    yield lambda: [(r / "a").rename(r / "x"), (r / "x" / "b" / "c" / "new").write_bytes(b"3")]
    yield lambda: [(r / "x" / "b").rename(out / "b"), (out / "b" / "late").write_bytes(b"4"),
                   (out / "b").rename(r / "back")]
    yield lambda: [(r / "back" / "late").rename(r / "x" / "f")]                 # over a file
    yield lambda: [(r / "empty").mkdir(), (r / "back").rename(r / "empty")]      # over a dir
    yield lambda: [(r / "x").rename(r / "tmp"), (r / "empty").rename(r / "x"),
                   (r / "tmp").rename(r / "empty")]                              # a swap
    yield lambda: [(r / "p").mkdir(), (r / "p").rename(r / "q"), (r / "q").rename(r / "r"),
                   (r / "r" / "f").write_bytes(b"5"), os.link(r / "r" / "f", r / "r" / "h"),
                   os.truncate(r / "empty" / "f", 0), os.chmod(r / "r" / "h", 0o600)]
    yield lambda: [shutil.rmtree(r / "empty"), (r / "r" / "f").unlink()]


def test_a_target_built_from_the_events_equals_the_tree(watcher, root, tmp_path):
    """The state-based model of the daemon (tests/watch_model.apply) after each step."""
    from tests.watch_model import apply, disk
    outside = tmp_path / "outside"
    outside.mkdir()
    model = disk(root)
    for step in _shapes(root, outside):
        step()
        events = settle(watcher, root) + watcher.settle()
        model = apply(model, events, root)
        assert model == disk(root), kinds(events)


def test_the_filesystem_mark_is_seen_in_place_and_gone_with_an_unmount(watcher, root, tmp_path):
    """fdinfo names a filesystem mark by the kernel's dev_t (major << 20 | minor), not
    stat's encoding: the root here is on a block device (major != 0), where the two
    differ, and a wrong reading would call every mount table change a lost root."""
    from tests.reliability.conftest import tmpfs, umount

    assert os.major(os.stat(root).st_dev) != 0, "the test wants a disk file system here"
    assert watcher.mark_alive() and watcher.mounts_changed() == []
    other = tmp_path / "fs"
    with tmpfs(other, "1m"):
        w = FanotifyWatcher(str(other), None)
        try:
            assert w.start() == [] and w.mark_alive()
            umount(other)
            assert not w.mark_alive()
            assert [e.kind for e in w.mounts_changed()] == ["lost"]
            assert w.mounts_changed() == []          # told once
        finally:
            w.close()
    assert watcher.mark_alive()


def test_the_mark_is_known_by_its_superblock_not_the_roots_st_dev(watcher, root, tmp_path,
                                                                    monkeypatch):
    """On btrfs the root's st_dev is its subvolume's anonymous device, not the superblock's
    that fdinfo lists the mark on: the check against st_dev said the mark was gone at every
    change of the mount table, the root lost, the tree walked again (a breaker). The
    superblock is learnt from fdinfo when the mark is placed; here the root's st_dev is
    made to differ, as btrfs's does, and the mark still reads alive until unmounted."""
    from mirrord.watch import fanotify_sys
    from tests.reliability.conftest import tmpfs, umount

    assert watcher.mark_sdevs and watcher.mark_alive()
    known = watcher.identity.known
    monkeypatch.setattr(watcher.identity, "known", (known[0] + 1, *known[1:]))  # a subvolume's
    assert watcher.mark_alive() and watcher.mounts_changed() == []
    other = tmp_path / "fs2"
    with tmpfs(other, "1m"):
        w = FanotifyWatcher(str(other), None)
        try:
            assert w.start() == [] and w.mark_alive()
            monkeypatch.setattr(w.identity, "known", (w.identity.known[0] + 1, *w.identity.known[1:]))
            umount(other)
            assert not w.mark_alive()
        finally:
            w.close()
    fdinfo = tmp_path / "fdinfo"
    fdinfo.write_text("pos:\t0\nflags:\t02\nfanotify flags:10 event-flags:0\n"
                      "fanotify sdev:29 mflags:0 mask:4 ignored_mask:0\n"
                      "fanotify ino:1a sdev:29 mflags:0 mask:0 ignored_mask:40000000\n")
    assert fanotify_sys.filesystem_marks(-1, fdinfo=str(fdinfo)) == {"29"}


def test_a_directory_deeper_than_path_max_is_named_by_climbing(watcher, root):
    """readlink of /proc/self/fd fails with ENAMETOOLONG for a directory whose path is
    longer than PATH_MAX (4,096 bytes): every event below such a directory was dropped as
    outside the root, without a word, status in_sync (a breaker). It is named by climbing
    through '..' now, as inotify names it from its parents."""
    part = "d" * 250
    fd = nested(root, part, 20)   # 20 x 251 bytes: past PATH_MAX
    try:
        settle(watcher, root)                       # the mkdirs, named as they came
        watcher.paths.clear()                       # looked up again: by handle
        made = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(made, b"deep")
        os.close(made)
    finally:
        os.close(fd)
    deep = "/".join([part] * 20) + "/deep.jpg"
    assert len(deep) > 4096
    assert ("write", deep) in kinds(settle(watcher, root))
