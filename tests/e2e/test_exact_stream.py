"""The live stream alone makes every target exact: the real `mirrord run` against a local
directory, S3 (SeaweedFS) and a mirror host (rsync over sshd), no reconcile in between.

Each test performs one kind of operation that users found left a mirror different
from the source (a directory swapped with one from outside, created and renamed at
once, a permission-only or mtime-only change, a truncate by path, directory modes,
empty directories), waits for the backlog to drain, checks every target is exact
(tests/exactness.py: bytes, mtime, mode, the set of directories), and then that a
reconcile dry run proposes nothing. Every test runs once per watcher backend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import Env, live_only_config, poll


@pytest.fixture(params=["inotify", "fanotify"])
def env(request, tmp_path, seaweedfs, sshd):
    # reconcile only on demand; each watcher backend in turn (mirrord.watch.select)
    e = Env(tmp_path, live_only_config(tmp_path, seaweedfs, sshd, watcher=request.param,
                                        log_level="debug"))
    try:
        yield e
    finally:
        e.close()


def start(env: Env) -> None:
    """Start the daemon and wait for the reconcile pass that follows every start, so no
    later repair can hide what the live stream missed."""
    env.daemon.start()
    poll(lambda: all(t.get("last_reconcile") for t in env.daemon.status()["targets"].values()),
         timeout=120, what="the start-up reconcile pass")


def write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)


def test_directory_swapped_with_one_from_outside(env, tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "staging").mkdir(parents=True)
    write(outside / "staging" / "new.jpg", b"staged")
    gallery = env.src / "gallery"
    gallery.mkdir()
    write(gallery / "old.jpg", b"old")
    start(env)
    env.assert_exact(passes_allowed=True)
    os.rename(gallery, outside / "x")
    os.rename(outside / "staging", gallery)
    write(outside / "x" / "written-after-moving-out.jpg", b"not ours")
    poll(env.drained, timeout=60, what="the swap shipped")
    write(gallery / "later.jpg", b"later")
    env.assert_exact(passes_allowed=True)


@pytest.mark.parametrize("busy", [False, True])
def test_directory_created_and_renamed_at_once(env, busy):
    start(env)
    if busy:   # a burst in flight while the directory is published
        burst = env.src / "burst"
        burst.mkdir()
        for i in range(300):
            write(burst / f"f{i:04d}.bin", os.urandom(2048))
    (env.src / "incoming").mkdir()
    os.rename(env.src / "incoming", env.src / "2026-11")
    write(env.src / "2026-11" / "a.jpg", b"published")
    (env.src / "empty-tmp").mkdir()
    os.rename(env.src / "empty-tmp", env.src / "empty-published")
    env.assert_exact(passes_allowed=True)


def test_permission_only_changes(env):
    write(env.src / "private.jpg", b"p" * 100, 0o600)
    write(env.src / "public.jpg", b"q" * 100, 0o644)
    start(env)
    env.assert_exact(passes_allowed=True)
    os.chmod(env.src / "private.jpg", 0o644)
    os.chmod(env.src / "public.jpg", 0o600)   # hidden on the primary: hidden on the mirror
    env.assert_exact(passes_allowed=True)


def test_mtime_only_change(env):
    write(env.src / "a.png", b"a" * 50)
    start(env)
    env.assert_exact(passes_allowed=True)
    os.utime(env.src / "a.png", ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))
    env.assert_exact(passes_allowed=True)


def test_truncate_by_path(env):
    write(env.src / "log.txt", b"x" * 10_000)
    start(env)
    env.assert_exact(passes_allowed=True)
    os.truncate(env.src / "log.txt", 1234)
    env.assert_exact(passes_allowed=True)


def test_a_file_written_and_renamed_back_and_forth(env):
    """`echo $i > a; mv a b; mv b a`, 30 times, and a rotation through three names: a
    move's source end was recorded waiting for the move, which already waited for it, and
    neither row was ever claimed (a breaker: `a` missing or old, a stale `b`, the target
    `stalled` for good; tests/unit/test_journal_wait_cycles.py)."""
    write(env.src / "a", b"0")
    start(env)
    env.assert_exact(passes_allowed=True)
    for i in range(30):   # at a shell loop's pace (a few ms a command): the daemon claims
        write(env.src / "a", b"%d" % i)   # between them, which a faster loop coalesces away
        for old, new in (("a", "b"), ("b", "a")):
            time.sleep(0.002)
            os.rename(env.src / old, env.src / new)
    for i in range(60):
        write(env.src / "t.new", b"%d" % i)
        for old, new in (("t.new", f"f{i % 3}"), (f"f{i % 3}", "g"), ("g", f"f{i % 3}")):
            time.sleep(0.002)
            os.rename(env.src / old, env.src / new)
    env.assert_exact(passes_allowed=True)


def test_names_with_control_characters_removed_and_moved(env):
    """A file name may hold any byte but '/' and NUL. One whose S3 key XML cannot carry (a
    C0 control) made every DeleteObjects call naming it fail as MalformedXML: a directory
    removed or moved, or a batch of deletes, left its keys on S3 for good."""
    names = ["a\x01b.jpg", "esc\x1b[0m.jpg", "nl\n.jpg", "plain.jpg", "us\x1f"]
    start(env)
    for d in ("removed", "moved", "emptied"):
        (env.src / d).mkdir()
        for name in names:
            write(env.src / d / name, name.encode())
    env.assert_exact(passes_allowed=True)
    shutil.rmtree(env.src / "removed")
    os.rename(env.src / "moved", env.src / "there")
    for name in names:
        os.unlink(env.src / "emptied" / name)
    env.assert_exact(passes_allowed=True)


def test_directory_mtimes_set_alone(env, tmp_path):
    """`touch -m` and `tar x` (GNU tar sets each directory's mtime after its contents) set a
    directory's mtime with the atime omitted, which inotify reports as IN_MODIFY. It was
    taken for a file written: "d/" shipped as absent (a local mirror lost an empty
    directory), a row the host target retried for good, "" for the root a permanent
    error. A truncate by path (IN_MODIFY too, reported after the same quiet time) marks
    when those events have been handled; then the targets stay exact and drained."""
    (env.src / "d" / "sub").mkdir(parents=True)
    write(env.src / "d" / "sub" / "f.jpg", b"f" * 10)
    (env.src / "empty").mkdir()
    write(env.src / "marker", b"0123456789")
    archive = tmp_path / "restore.tar"
    staging = tmp_path / "staging"
    (staging / "restored" / "inner").mkdir(parents=True)
    write(staging / "restored" / "inner" / "r.jpg", b"restored")
    subprocess.run(["tar", "-C", staging, "-cf", archive, "restored"], check=True)
    start(env)
    env.assert_exact(passes_allowed=True)
    for rel in ("d/sub", "d", "empty", "."):
        subprocess.run(["touch", "-m", "-d", "@1500000000", rel], cwd=env.src, check=True)
    subprocess.run(["tar", "-C", env.src, "-xf", archive], check=True)
    os.truncate(env.src / "marker", 3)
    env.assert_exact(passes_allowed=True)
    env.assert_exact(passes_allowed=True, timeout=20)   # nothing undone, nothing stuck


def test_directory_modes_and_empty_directories(env, tmp_path):
    start(env)
    old = os.umask(0o027)
    try:
        (env.src / "a" / "b").mkdir(parents=True)     # 0750 under umask 027 (MediaWiki)
        write(env.src / "a" / "b" / "f.jpg", b"f", 0o640)
        (env.src / "empty").mkdir()
        (env.src / "gone").mkdir()
    finally:
        os.umask(old)
    outside = tmp_path / "outside-empty"
    outside.mkdir()
    os.chmod(outside, 0o711)
    env.assert_exact(passes_allowed=True)
    os.rename(outside, env.src / "moved-in-empty")
    os.rename(env.src / "empty", env.src / "renamed-empty")
    os.chmod(env.src / "a", 0o700)
    (env.src / "gone").rmdir()
    env.assert_exact(passes_allowed=True)
    shutil.rmtree(env.src / "a")
    env.assert_exact(passes_allowed=True)


def test_directory_mode_changed_just_before_or_after_its_rename(env):
    """`chmod 700 d0; mv d0 e0` and `mv d1 e1; chmod 711 e1`, back to back, on shipped
    directories: a rename on the target keeps that directory's old mode, and the chmod
    (folded into the move, or seen before the rename reached the target) was lost on
    the local and rsync targets while status said in_sync (a breaker, 4 of 4)."""
    for i in range(2):
        (env.src / f"d{i}" / "sub").mkdir(parents=True)
        write(env.src / f"d{i}" / "sub" / "f.jpg", b"f")
    start(env)
    env.assert_exact(passes_allowed=True)
    os.chmod(env.src / "d0", 0o700)
    os.rename(env.src / "d0", env.src / "e0")
    os.rename(env.src / "d1", env.src / "e1")
    os.chmod(env.src / "e1", 0o711)
    env.assert_exact(passes_allowed=True)


def test_hard_link_rename_over_and_rename_again(env):
    write(env.src / "orig.jpg", b"o" * 10)
    write(env.src / "victim.jpg", b"v" * 10)
    start(env)
    env.assert_exact(passes_allowed=True)
    os.link(env.src / "orig.jpg", env.src / "link.jpg")
    os.rename(env.src / "orig.jpg", env.src / "victim.jpg")
    (env.src / "d1").mkdir()
    write(env.src / "d1" / "in.jpg", b"in")
    os.rename(env.src / "d1", env.src / "d2")
    os.rename(env.src / "d2", env.src / "d3")
    env.assert_exact(passes_allowed=True)


def test_hard_link_then_original_removed_at_once(env):
    """`link a b; unlink a` back to back (Maildir's rename-without-overwrite): by the time
    the create of b is handled its link count is 1 again, and no close will follow."""
    start(env)
    write(env.src / "a1.jpg", b"linked content")
    os.link(env.src / "a1.jpg", env.src / "b1.jpg")
    os.unlink(env.src / "a1.jpg")
    env.assert_exact(passes_allowed=True)


def test_changes_through_a_link_made_while_running_reach_the_original(env):
    """`ln base/c.jpg old/c.jpg` (one link until then, so no walk had remembered it),
    then a write, a chmod and a touch through the new name: the kernel names only the
    new name, and base/c.jpg stayed stale on every target with status in_sync (a
    breaker, 6 of 6). A change finding more links than names seen now has the sources
    walked once (mirrord.hardlinks, take_walk), which finds and sends the original."""
    for d in ("base", "old"):
        (env.src / d).mkdir()
    write(env.src / "base" / "c.jpg", b"c")
    write(env.src / "base" / "e.jpg", b"e")
    start(env)
    env.assert_exact(passes_allowed=True)
    os.link(env.src / "base" / "c.jpg", env.src / "old" / "c.jpg")
    with open(env.src / "old" / "c.jpg", "ab") as fh:
        fh.write(b" appended through the new name")
    (env.src / "new").mkdir()
    os.link(env.src / "base" / "e.jpg", env.src / "new" / "e.jpg")
    os.chmod(env.src / "new" / "e.jpg", 0o600)
    os.utime(env.src / "new" / "e.jpg", (978307200, 978307200))
    env.assert_exact(passes_allowed=True)


def test_a_link_renamed_into_place_then_written_through_the_original(env):
    """Dedup tools (hardlink(1), jdupes -L, rdfind) link under a temporary name and rename
    it into place, over a file or onto a new name; the create of the temporary name was
    read after the rename, when it was gone, so the final name was never remembered and a
    write through the original never reached it (a breaker, 6 of 6)."""
    (env.src / "x").mkdir()
    write(env.src / "x" / "a.jpg", b"one")
    write(env.src / "x" / "b.jpg", b"other")
    start(env)
    env.assert_exact(passes_allowed=True)
    x = env.src / "x"
    os.link(x / "a.jpg", x / ".new-part")
    os.rename(x / ".new-part", x / "new.jpg")
    os.link(x / "a.jpg", x / ".b-part")
    os.rename(x / ".b-part", x / "b.jpg")
    env.assert_exact(passes_allowed=True)   # the links are shipped (as copies) first
    with open(x / "a.jpg", "ab") as fh:
        fh.write(b" written through the original")
    env.assert_exact(passes_allowed=True)


def test_o_tmpfile_linked_into_the_tree(env):
    """open(O_TMPFILE) + linkat(AT_EMPTY_PATH): the file gets its name with no create-then-
    close, its close names the kernel's '#inode' entry."""
    import ctypes
    start(env)
    fd = os.open(env.src, os.O_TMPFILE | os.O_WRONLY, 0o640)
    try:
        os.write(fd, b"born nameless")
        libc = ctypes.CDLL(None, use_errno=True)
        AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000
        if libc.linkat(fd, b"", AT_FDCWD, os.fsencode(env.src / "named.jpg"), AT_EMPTY_PATH):
            raise OSError(ctypes.get_errno(), "linkat")
    finally:
        os.close(fd)
    env.assert_exact(passes_allowed=True)


def _dir_file(src: Path) -> tuple[Path, Path]:
    write_tree(src / "D" / "in.jpg", b"in the directory")
    write_tree(src / "D" / "sub" / "deep.jpg", b"deeper")
    write(src / "F", b"a file")
    return src / "D", src / "F"


def _across(src: Path) -> tuple[Path, Path]:
    write_tree(src / "p" / "q" / "D" / "sub" / "in.jpg", b"in the directory")
    write(src / "p" / "q" / "D" / "top.jpg", b"top")
    write_tree(src / "r" / "F", b"a file elsewhere")
    return src / "p" / "q" / "D", src / "r" / "F"


def _dir_symlink(src: Path) -> tuple[Path, Path]:
    write_tree(src / "D" / "s" / "in.jpg", b"in the directory")
    os.symlink("somewhere", src / "L")
    return src / "D", src / "L"


SHAPES = {"file": _dir_file, "across parents": _across, "symlink": _dir_symlink}


def test_a_directory_exchanged_with_a_non_directory(env):
    """renameat2(RENAME_EXCHANGE) of a directory with a file or symlink, all shipped: every
    shape (SHAPES), the directory named first or second, one exchange or three 0.3 s apart
    (an odd number: one in all, read in several), each case in a directory of its own, in
    one daemon run. Found by a breaker: with the directory named first, inotify reads two
    renames, the directory's first (recorded as a move), then the file's, which found that
    move pending at its old name and replaced it with a plain delete: the target got an
    empty directory there, its contents never sent, status in_sync (inotify, local and S3,
    every run)."""
    from tests.e2e.test_exchange_in_flight import exchange
    start(env)
    cases = []
    for name, shape in SHAPES.items():
        for first in ("directory", "other"):
            for times in (1, 3):
                case = env.src / f"{name.replace(' ', '-')}-{first}-{times}"
                case.mkdir()
                d, other = shape(case)
                cases.append((d, other, times) if first == "directory" else (other, d, times))
    env.assert_exact(passes_allowed=True)
    for round_ in range(3):
        for a, b, times in cases:
            if round_ < times:
                exchange(a, b)
        time.sleep(0.3)
    env.assert_exact(passes_allowed=True)


def test_many_directories_exchanged_at_once(env):
    """Each shape of test_a_directory_exchanged_with_a_non_directory in either order, in
    turn: six copies, all exchanged three times 0.3 s apart, so that the next exchange
    comes while the last one's removals are at the workers. Found in CI (fanotify, a
    directory exchanged with a symlink, the symlink named first): the third exchange's
    subtree check of the directory's new name trusted `shipped` rows that the second
    exchange's tree removal of that name, in flight, was about to take away; the targets
    kept an empty directory (eight copies at once: 5 runs in 6). Fixed in mirrord.catchup
    (mirrord.journal.read.in_flight_removals)."""
    from tests.e2e.test_exchange_in_flight import exchange
    start(env)
    for name, shape in SHAPES.items():
        for first in ("directory", "other"):
            pairs = []
            for copy in range(6):
                case = env.src / f"{name.replace(' ', '-')}-{first}-{copy}"
                case.mkdir()
                d, other = shape(case)
                pairs.append((d, other) if first == "directory" else (other, d))
            env.assert_exact(passes_allowed=True)
            for _ in range(3):
                for a, b in pairs:
                    exchange(a, b)
                time.sleep(0.3)
            env.assert_exact(passes_allowed=True)


def write_tree(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, data)


@pytest.fixture
def excluding_env(env):
    """The same daemon, with operators' exclude patterns: a directory-only name, an
    anchored path, a path pattern."""
    text = env.cfg.read_text()
    line = next(x for x in text.splitlines() if x.startswith("exclude = "))
    env.cfg.write_text(text.replace(line, "exclude = *.tmp, thumb/, /temp, cache/*.jpg"))
    return env


def _excluded(env):
    from mirrord import config as config_mod
    return config_mod.load(env.cfg).source("uploads").excluded


def test_excluded_directories_and_renames_across_excludes(excluding_env):
    env = excluding_env
    for d in ("a/thumb", "temp", "cache", "pics", "sub"):
        (env.src / d).mkdir(parents=True)
    write(env.src / "a" / "thumb" / "t1.jpg", b"thumb")
    write(env.src / "temp" / "x.jpg", b"temp")
    write(env.src / "cache" / "c.jpg", b"cache")
    write(env.src / "pics" / "p.jpg", b"pic")
    write(env.src / "sub" / "s.jpg", b"sub")
    start(env)
    excluded = _excluded(env)
    env.assert_exact(excludes=excluded, passes_allowed=True)
    os.rename(env.src / "a" / "thumb", env.src / "a" / "notthumb")   # excluded -> included
    os.rename(env.src / "cache", env.src / "cache2")                 # path pattern no longer applies
    os.rename(env.src / "pics", env.src / "thumb")                   # included -> excluded
    os.rename(env.src / "sub", env.src / "cache")                    # path pattern now applies
    (env.src / "b" / "thumb").mkdir(parents=True)                    # never an empty thumb/ on a target
    write(env.src / "b" / "thumb" / "t2.jpg", b"t2")
    env.assert_exact(excludes=excluded, passes_allowed=True)

