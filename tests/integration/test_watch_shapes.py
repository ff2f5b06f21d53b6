"""Every directory-rename shape and every kind of change, on the real kernel, run
unchanged against both watcher backends (the `backend` fixture: inotify, fanotify).

After each shape: the watcher's map of the tree agrees with the kernel (inotify: each wd
watching that very inode; fanotify: each cached directory handle resolving to its path)
and a state-based model of the target built from the reported events equals the real
tree. Waits are bounded polls (a sentinel file's events mark the end).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

import pytest

from tests.watch_backends import agrees
from tests.watch_model import apply, disk, read_until, settle


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "src"
    r.mkdir()
    return r


@pytest.fixture
def outside(tmp_path) -> Path:
    o = tmp_path / "outside"
    o.mkdir()
    return o


class Watched:
    def __init__(self, make_watcher, root: Path, **kw):
        self.root = root
        self.w = make_watcher(root, **kw)
        assert self.w.start() == []
        self.model = disk(root)

    def settle(self):
        events = settle(self.w, self.root)
        self.model = apply(self.model, events, self.root)
        return events

    def check(self):
        agrees(self.w, self.root)
        assert self.model == disk(self.root)


@pytest.fixture
def wt(make_watcher, root):
    return Watched(make_watcher, root)      # make_watcher closes it


def kinds(events):
    return [(e.kind, e.path) + ((e.src,) if e.src else ()) for e in events]


def sh(root: Path, script: str) -> None:
    """Back-to-back changes in one process, faster than the watcher reads."""
    subprocess.run(["sh", "-c", script], cwd=root, check=True)


# ------------------------------------------------------------------ directory renames


def test_swapped_with_a_directory_from_outside(wt, root, outside):
    (root / "uploads" / "gallery").mkdir(parents=True)
    (root / "uploads" / "gallery" / "old.jpg").write_bytes(b"1")
    (outside / "staging").mkdir()
    (outside / "staging" / "new.jpg").write_bytes(b"2")
    wt.settle()
    sh(root, f"mv uploads/gallery {outside}/x && mv {outside}/staging uploads/gallery")
    wt.settle()
    (root / "uploads" / "gallery" / "later.jpg").write_bytes(b"3")
    (outside / "x" / "ghost.jpg").write_bytes(b"4")
    assert kinds(wt.settle()) == [("write", "uploads/gallery/later.jpg")]
    wt.check()


def test_created_and_renamed_at_once(wt, root):
    (root / "uploads").mkdir()
    wt.settle()
    sh(root, "mkdir uploads/incoming && mv uploads/incoming uploads/2026-11")
    wt.settle()
    (root / "uploads" / "2026-11" / "f.jpg").write_bytes(b"1")
    assert ("write", "uploads/2026-11/f.jpg") in kinds(wt.settle())
    wt.check()


def test_renamed_within_in_and_out(wt, root, outside):
    (root / "a" / "s").mkdir(parents=True)
    (outside / "in" / "t").mkdir(parents=True)
    (outside / "in" / "t" / "f").write_bytes(b"1")
    wt.settle()
    os.rename(root / "a", root / "b")
    os.rename(outside / "in", root / "b" / "in")
    os.rename(root / "b" / "s", outside / "s")
    wt.settle()
    (root / "b" / "in" / "t" / "g").write_bytes(b"2")
    assert kinds(wt.settle()) == [("write", "b/in/t/g")]
    wt.check()


def test_renamed_over_an_existing_empty_directory(wt, root, backend):
    (root / "a").mkdir()
    (root / "a" / "f").write_bytes(b"1")
    (root / "b").mkdir()
    wt.settle()
    os.rename(root / "a", root / "b")
    # inotify: b held another directory: a rename over it and renameat2(RENAME_EXCHANGE)
    # look alike until later events, so b is rescanned once the batch is handled.
    # fanotify: an exchange comes as a second FAN_RENAME (b->a), so one event says it all
    expected = {"inotify": [("move", "b", "a"), ("rescan", "b")],
                "fanotify": [("move", "b", "a")]}[backend]
    assert kinds(wt.settle()) == expected
    wt.check()


def exchange(a: Path, b: Path) -> None:
    """renameat2(a, b, RENAME_EXCHANGE) through glibc's wrapper (glibc 2.28+, any
    architecture): no coreutils here has `mv --exchange`."""
    at_fdcwd, rename_exchange = -100, 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(at_fdcwd, bytes(a), at_fdcwd, bytes(b), rename_exchange) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(a))


def test_exchanged(wt, root):
    (root / "a").mkdir()
    (root / "a" / "in-a").write_bytes(b"1")
    (root / "b" / "sub").mkdir(parents=True)
    wt.settle()
    exchange(root / "a", root / "b")
    wt.settle()
    (root / "a" / "sub" / "later").write_bytes(b"2")
    assert kinds(wt.settle()) == [("write", "a/sub/later")]
    wt.check()


def test_a_file_renamed_back_is_a_move_not_an_exchange(wt, root):
    """fanotify took a rename back (b->a after a->b, the same file) for an exchange's
    second half and shipped both names as they stand: `mv f f.bak; mv dir-f f` read so
    left the name f rescanned, never deleted, and the S3 object f beside f/inner.jpg
    (tests/e2e/test_versioned_moves_keep_nothing.py)."""
    (root / "f").write_bytes(b"a file called f")
    wt.settle()
    os.rename(root / "f", root / "f.bak")
    assert kinds(wt.settle()) == [("move", "f.bak", "f")]
    os.rename(root / "f.bak", root / "f")
    assert kinds(wt.settle()) == [("move", "f", "f.bak")]
    (root / "dir-f").mkdir()
    (root / "dir-f" / "inner.jpg").write_bytes(b"inside")
    wt.settle()
    sh(root, "mv f f.bak && mv dir-f f")
    assert kinds(wt.settle()) == [("move", "f.bak", "f"), ("move", "f", "dir-f")]
    wt.check()


def test_renamed_again_before_its_events_are_handled(wt, root):
    (root / "a" / "s").mkdir(parents=True)
    wt.settle()
    sh(root, "mv a b && mv b c && mkdir a && mv c a/c && mkdir c")
    wt.settle()
    wt.check()


@pytest.mark.parametrize("script", [
    "mv d1 x && mv d2 d1 && mv x d2",                  # two directories swapped, a temp name
    "mv d1 d3 && mv d2 d1 && mv d3 d2 && mv d1 d9",    # swapped, then one renamed on
])
def test_a_rotation_read_at_once_is_moves(wt, root, script):
    """Renames through names that earlier renames in the same read emptied are moves, not
    a removal and a new directory: inotify asked the kernel where a directory stands while
    handling an earlier half, and the kernel answers with the tree as it is now, so the
    node was at the new name before its own MOVED_TO was read (reported as an rmtree and a
    mkdir, every file was kept as 'directory removed' with keep_deleted on)."""
    for d in ("d1", "d2"):
        (root / d / "sub").mkdir(parents=True)
        for i in range(3):
            (root / d / "sub" / f"f{i}").write_bytes(d.encode())
    wt.settle()
    sh(root, script)
    events = wt.settle()
    assert not [e for e in events if e.kind in ("rmtree", "mkdir", "delete", "write")], \
        kinds(events)
    assert sum(e.kind == "move" for e in events) == script.count("mv ")
    wt.check()


def test_renamed_while_files_are_created_in_it(wt, root):
    (root / "a").mkdir()
    wt.settle()
    sh(root, "for i in 1 2 3 4 5 6 7 8; do echo $i > a/f$i; done & "
             "mv a b; sleep 0.05; mv b c; wait; true")
    wt.settle()
    wt.check()


def test_a_file_renamed_over_a_deleted_directory_name(wt, root):
    (root / "d").mkdir()
    (root / "f").write_bytes(b"1")
    wt.settle()
    sh(root, "rmdir d && mv f d")
    wt.settle()
    wt.check()


def test_a_directory_made_and_filled_then_moved_out_and_back(wt, root, outside):
    sh(root, f"mkdir -p n/m && echo 1 > n/m/f && mv n {outside}/n && mv {outside}/n n2")
    wt.settle()
    wt.check()


# ------------------------------------------------------------------ every kind of change


def test_chmod_is_an_attr_event(wt, root):
    (root / "f").write_bytes(b"1")
    (root / "d").mkdir()
    wt.settle()
    os.chmod(root / "f", 0o600)
    os.chmod(root / "d", 0o700)
    got = [(e.kind, e.path, e.is_dir) for e in wt.settle()]
    assert got == [("attr", "f", False), ("attr", "d", True)]


def test_chmod_of_the_source_root_is_an_attr_event_of_the_root(wt, root):
    """The root's own mode is never mirrored, but a chmod of it may make what failed
    below it readable: it is reported as ("attr", "", is_dir) on both backends, and the
    journal retries the failed rows below it (Change.is_dir; before, neither backend
    reported it and those rows waited 600 s: a review, helper-153)."""
    (root / "f").write_bytes(b"1")
    wt.settle()
    os.chmod(root, 0o700)
    try:
        got = [(e.kind, e.path, e.is_dir) for e in wt.settle()]
    finally:
        os.chmod(root, 0o755)
    assert got == [("attr", "", True)]


def test_utime_is_an_attr_event(wt, root):
    (root / "f").write_bytes(b"1")
    wt.settle()
    os.utime(root / "f", (1_000_000, 1_000_000))
    assert kinds(wt.settle()) == [("attr", "f")]


def test_a_directory_s_mtime_set_alone_is_not_a_write(wt, root):
    """`touch -m`, and GNU tar restoring each directory's mtime, set the mtime with the
    atime omitted (UTIME_OMIT): the kernel reports that as IN_MODIFY, not IN_ATTRIB
    (fsnotify_change). inotify took it for a file being written: a write of "d/" that
    the shipper saw as absent (a local mirror lost the directory), and of "" for the
    root (a permanent error). Directory mtimes are not mirrored (README), so nothing is
    reported, as fanotify reports nothing."""
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"1")
    (root / "empty").mkdir()
    wt.settle()
    for rel in ("d", "d/sub", "empty", "."):
        subprocess.run(["touch", "-m", "-d", "@1500000000", rel], cwd=root, check=True)
    assert wt.settle() == []
    wt.check()


def test_truncate_by_path_is_a_write_once_quiet(wt, root):
    (root / "f").write_bytes(b"12345")
    wt.settle()
    os.truncate(root / "f", 2)
    assert kinds(wt.settle()) == [("write", "f")]


def test_writes_through_a_long_lived_fd_are_reported_once_quiet(make_watcher, root, backend):
    w = Watched(make_watcher, root, quiet=0.3)
    with open(root / "log", "wb", buffering=0) as fh:
        fh.write(b"first")
        events = read_until(w.w, lambda evs: any(e.path == "log" for e in evs))
        assert kinds(events) == [("write", "log")]
        fh.write(b"second")
        events += read_until(w.w, lambda evs: any(e.path == "log" for e in evs))
        assert kinds(events) == [("write", "log"), ("write", "log")]
        # nothing is left pending but the root's identity check, on a timer in both
        assert w.w.next_deadline() == w.w.identity.next_deadline()
        assert not (w.w.modified if backend == "fanotify" else w.w.dirty)


def test_a_hard_link_is_a_write(wt, root):
    (root / "orig").write_bytes(b"data")
    wt.settle()
    os.link(root / "orig", root / "linked")
    got = wt.settle()
    assert ("write", "linked") in kinds(got) and all(e.path == "linked" for e in got)


_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_SYMLINK_FOLLOW = -100, 0x400


def link_tmpfile(fd: int, dst: Path) -> None:
    """linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, dst, AT_SYMLINK_FOLLOW), open(2)'s
    O_TMPFILE recipe: os.link() calls link(2), which does not follow the /proc symlink."""
    rc = _libc.linkat(AT_FDCWD, f"/proc/self/fd/{fd}".encode(), AT_FDCWD, bytes(dst),
                      AT_SYMLINK_FOLLOW)
    assert rc == 0, os.strerror(ctypes.get_errno())


@pytest.mark.parametrize("close_first", [False, True], ids=["still-open", "closed"])
def test_an_o_tmpfile_linked_into_the_tree_is_a_write(wt, root, close_first):
    """O_TMPFILE-style naming: the file is written with no name, then given one. Its writes
    and close are reported under the kernel's "#<inode>" dentry name, never the real one,
    so only the create at the real name says it exists: it is due as a write once quiet."""
    (root / "d").mkdir()
    wt.settle()
    fd = os.open(root / "d", os.O_TMPFILE | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"image bytes")
        link_tmpfile(fd, root / "d" / "photo.jpg")
        if close_first:
            os.close(fd)
            fd = -1
        got = wt.settle()
    finally:
        if fd >= 0:
            os.close(fd)
    assert kinds(got) == [("write", "d/photo.jpg")]
    assert kinds(wt.settle()) == []          # the late close under "#<inode>" is not shipped
    wt.check()


def test_the_root_unmounted_is_lost_and_a_new_mount_is_watched_again(make_watcher, backend,
                                                                    tmp_path):
    """The source root is a mount that goes away (inotify: IN_UNMOUNT; fanotify reports no
    unmount, so the root's identity is checked every root_check seconds) and comes back:
    a watcher started on the new mount sees its changes."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "mirrord-test", str(mnt)], check=True)
    try:
        kw = {"root_check": 0.1} if backend == "fanotify" else {}
        w = make_watcher(mnt, **kw)
        assert w.start() == []
        (mnt / "f").write_bytes(b"1")
        assert ("write", "f") in kinds(read_until(w, lambda evs: evs))
        subprocess.run(["umount", str(mnt)], check=True)
        lost = read_until(w, lambda evs: any(e.kind == "lost" for e in evs))
        assert [e.kind for e in lost] == ["lost"] and lost[0].path == ""
        subprocess.run(["mount", "-t", "tmpfs", "mirrord-test", str(mnt)], check=True)
        again = make_watcher(mnt)
        assert again.start() == []
        (mnt / "g").write_bytes(b"2")
        assert kinds(settle(again, mnt)) == [("write", "g")]
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("shape", ["mounted over", "bind mount unmounted", "parent renamed"])
def test_the_root_gone_from_its_path_with_no_event_is_lost(make_watcher, backend, tmp_path,
                                                          shape):
    """Ways the root leaves its path that raise no event on a watch of it (inotify) or
    on the filesystem mark (fanotify): a file system mounted over it, a bind-mounted
    root unmounted (the directory it covered shows again), a directory above it renamed.
    Both watchers check the root's identity every root_check seconds: one "lost"."""
    parent = tmp_path / "p"
    root = parent / "src"
    root.mkdir(parents=True)
    (root / "f").write_bytes(b"1")
    mounted = []
    if shape == "bind mount unmounted":
        real = tmp_path / "real"
        real.mkdir()
        (real / "f").write_bytes(b"1")
        subprocess.run(["mount", "--bind", str(real), str(root)], check=True)
        mounted.append(root)
    try:
        w = make_watcher(root, root_check=0.1)
        assert w.start() == []
        (root / "g").write_bytes(b"2")
        assert ("write", "g") in kinds(read_until(w, lambda evs: evs))
        if shape == "mounted over":
            subprocess.run(["mount", "-t", "tmpfs", "mirrord-test", str(root)], check=True)
            mounted.append(root)
            (root / "on-the-new-fs").write_bytes(b"3")
        elif shape == "bind mount unmounted":
            subprocess.run(["umount", str(root)], check=True)
            mounted.clear()
        else:
            parent.rename(tmp_path / "p2")
        lost = read_until(w, lambda evs: any(e.kind == "lost" for e in evs))
        assert [e.kind for e in lost if e.kind != "write"] == ["lost"], kinds(lost)
        assert lost[-1].path == ""
    finally:
        for m in mounted:
            subprocess.run(["umount", "-l", str(m)], check=False)


# ------------------------------------------------------------------ found by the hypothesis test
# fanotify resolves a directory handle when the event is read, not when it happened: each
# shape below once left the target model wrong for it (the directory named by the
# handle was gone or had moved by the time its events were read)


def test_a_directory_emptied_then_renamed_over_from_outside(wt, root, outside):
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"1")
    (outside / "in" / "s").mkdir(parents=True)
    (outside / "in" / "s" / "g").write_bytes(b"2")
    wt.settle()
    sh(root, f"rmdir a/b && rm a/f && mv {outside}/in a")
    wt.settle()
    wt.check()


def test_a_subdirectory_moved_up_then_its_parent_renamed_over(wt, root, outside):
    (root / "a" / "b").mkdir(parents=True)
    (outside / "in" / "s").mkdir(parents=True)
    wt.settle()
    sh(root, f"mv a/b b && mv {outside}/in a")
    wt.settle()
    wt.check()


@pytest.mark.parametrize("then", ["rm -rf a", "mv a {outside}/gone"])
def test_exchanged_then_one_side_s_parent_leaves(wt, root, outside, then):
    (root / "a" / "x" / "s").mkdir(parents=True)
    (root / "a" / "x" / "s" / "f").write_bytes(b"1")
    (root / "b").mkdir()
    wt.settle()
    exchange(root / "a" / "x", root / "b")
    sh(root, then.format(outside=outside))
    wt.settle()
    wt.check()


def test_a_file_renamed_out_of_a_directory_that_is_renamed_next(wt, root, outside):
    (outside / "in" / "s").mkdir(parents=True)
    (outside / "in" / "s" / "f").write_bytes(b"1")
    sh(root, f"mv {outside}/in b")
    wt.settle()
    sh(root, "mv b/s/f fa && mv b c")
    wt.settle()
    wt.check()


def test_a_directory_emptied_then_two_directories_moved_in_one_over_it(wt, root, outside):
    (root / "a" / "b").mkdir(parents=True)
    for name in ("in1", "in2"):
        (outside / name / "s").mkdir(parents=True)
    wt.settle()
    sh(root, f"rmdir a/b && mv {outside}/in1 b && mv {outside}/in2 a")
    wt.settle()
    wt.check()


def test_a_directory_swapped_then_its_grandparent_renamed(wt, root, outside):
    """The hypothesis test's steps [[rename_in '' b, rename_in b/s a], [swap b/s/a,
    rename_within b -> a/a]]: b/s/a (holding s/f) leaves the tree, a new b/s/a (holding g)
    takes its name, then b becomes a/a, all before the watcher reads. fanotify read the
    move-out as b/s/a's handle resolved to a/a/s/a, then took that report back and gave
    it again after the move as a mkdir and a write: the move carried the old s/f along
    to a/a/s/a/s/f and nothing removed it."""
    (outside / "in" / "s" / "a" / "s").mkdir(parents=True)
    (outside / "in" / "s" / "a" / "s" / "f").write_bytes(b"in")
    (root / "a").mkdir()
    sh(root, f"mv {outside}/in b")
    wt.settle()
    (outside / "new").mkdir()
    (outside / "new" / "g").write_bytes(b"swap")
    sh(root, f"mv b/s/a {outside}/out && mv {outside}/new b/s/a && mv b a/a")
    wt.settle()
    wt.check()


def test_a_directory_removed_below_one_changed_then_renamed(wt, root):
    """rm -r P/S/X; chmod P/S; mv P Q before a read (R renamed first: fanotify's handle
    cache is cleared, so P/S is looked up after the move): fanotify reads the rmtree and
    the attr as Q/S/X and Q/S; after the move Q/S is listed again, and the rmtree below
    it must not be left out as "listed with it" (the move carried P/S/X to Q/S/X)."""
    (root / "P" / "S" / "X" / "Z").mkdir(parents=True)
    (root / "P" / "S" / "X" / "Z" / "z").write_bytes(b"z")
    (root / "R").mkdir()
    wt.settle()
    sh(root, "mv R R2 && rm -r P/S/X && chmod 750 P/S && mv P Q")
    wt.settle()
    wt.check()


def test_a_file_renamed_over_a_new_one_out_of_a_directory_renamed_next(wt, root, outside):
    """The hypothesis test's steps [[swap a], [rename_in '' b, create_file '' a, rename_file
    a/g -> fa, rename_within a -> b/a]]. fanotify read a/g's rename after a had become b/a
    (b moved in first clears the handle cache): a move fa <- b/a/g that dropped the write of
    fa it replaced, so the read() call's event count did not grow and the move went
    unnoted; reading a -> b/a, its old end b/a/g was not reported again, and the move
    carried a/g along to b/a/g on the target."""
    (root / "a").mkdir()
    (root / "a" / "g").write_bytes(b"swap")
    (outside / "in" / "s").mkdir(parents=True)
    (outside / "in" / "s" / "f").write_bytes(b"in")
    wt.settle()
    sh(root, f"mv {outside}/in b && echo x > fa && mv a/g fa && mv a b/a")
    wt.settle()
    wt.check()
