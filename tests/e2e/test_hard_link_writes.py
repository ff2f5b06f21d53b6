"""A write or chmod through one name of a hard-linked file reaches every name on every
target, live: the real `mirrord run` with either watcher, a local directory, S3 and a
mirror host, no reconcile after the start's.

The kernel names only the link a writer used (inotify(7), fanotify(7)), so every target
kept the old bytes at the other names until a reconcile found their mtime different
(the README listed it as a limit). mirrord.hardlinks remembers the names of multi-link
files from every walk and every change, and each change is sent under all of them.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.e2e.test_exact_stream import env, start, write  # noqa: F401 - env: the fixture


def append(path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def test_writes_through_any_name_reach_every_name(env):
    """Links made while stopped (the start walk learns them) and while running (`ln`
    reports the new name); a write through each name in turn; a chmod; a name removed and
    one renamed, the rest still kept equal; a link in another directory."""
    src = env.src
    (src / "a").mkdir()
    (src / "b").mkdir()
    write(src / "a" / "one.jpg", b"first")
    os.link(src / "a" / "one.jpg", src / "b" / "two.jpg")          # before the start
    start(env)
    env.assert_exact(passes_allowed=True)
    append(src / "a" / "one.jpg", b" + through one")
    env.assert_exact(passes_allowed=True)
    append(src / "b" / "two.jpg", b" + through two")
    env.assert_exact(passes_allowed=True)
    os.link(src / "b" / "two.jpg", src / "three.jpg")               # while running
    time.sleep(0.5)
    append(src / "a" / "one.jpg", b" + after the third")
    os.chmod(src / "three.jpg", 0o600)                              # the inode's mode
    env.assert_exact(passes_allowed=True)
    os.unlink(src / "a" / "one.jpg")
    os.rename(src / "three.jpg", src / "a" / "renamed.jpg")
    append(src / "b" / "two.jpg", b" + after the rename")
    env.assert_exact(passes_allowed=True)
    append(src / "a" / "renamed.jpg", b" + through the new name")
    env.assert_exact(passes_allowed=True)
    os.rename(src / "b", src / "b-moved")            # the directory holding a linked name
    env.assert_exact(passes_allowed=True)             # moved, and checked, on the targets
    append(src / "a" / "renamed.jpg", b" + after the directory moved")
    env.assert_exact(passes_allowed=True)


def test_a_name_reused_by_another_file_is_not_linked_any_more(env):
    """A remembered name now holding another file: a write through the first name sends
    the other name as it stands (one extra send, no wrong bytes), and forgets it."""
    src = env.src
    write(src / "x.jpg", b"x")
    os.link(src / "x.jpg", src / "y.jpg")
    start(env)
    env.assert_exact(passes_allowed=True)
    os.unlink(src / "y.jpg")
    write(src / "y.jpg", b"another file now")
    append(src / "x.jpg", b" + more")
    env.assert_exact(passes_allowed=True)


def test_a_linked_name_renamed_keeps_its_link(env):
    """A breaker: `mv y z` of a linked name, then a write through the other name. The
    index knew y, found it gone and forgot it; z was never learned (a file's rename is
    no walk), so every target kept z's old bytes. The rename moves the name now."""
    src = env.src
    write(src / "x.jpg", b"shared")
    os.link(src / "x.jpg", src / "y.jpg")
    start(env)
    env.assert_exact(passes_allowed=True)
    os.rename(src / "y.jpg", src / "z.jpg")
    env.assert_exact(passes_allowed=True)
    append(src / "x.jpg", b" + through x")
    env.assert_exact(passes_allowed=True)


@pytest.mark.parametrize("watcher", ["inotify", "fanotify"])
def test_a_link_between_two_sources(tmp_path, watcher):
    """A breaker: `a/x.jpg` and `b/y.jpg` one inode, two sources, each with its own local
    target; a write through a's name left b's target with the old bytes (one index per
    source: 6 runs in 8). The index spans the sources now."""
    from tests.e2e.helpers import wait_converged
    from tests.reliability.conftest import Daemon
    from tests.reliability.test_source_root_back import _config, _target

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.jpg").write_bytes(b"first")
    os.link(a / "x.jpg", b / "y.jpg")
    d = Daemon(_config(tmp_path, watcher, {"a": a, "b": b}), tmp_path / "log")
    try:
        d.start()
        wait_converged(a, _target(tmp_path, "a"))
        wait_converged(b, _target(tmp_path, "b"))
        append(a / "x.jpg", b" + through a")
        wait_converged(a, _target(tmp_path, "a"), timeout=60)
        wait_converged(b, _target(tmp_path, "b"), timeout=60)
        append(b / "y.jpg", b" + through b")
        wait_converged(a, _target(tmp_path, "a"), timeout=60)
        wait_converged(b, _target(tmp_path, "b"), timeout=60)
    finally:
        d.stop()


def test_links_outside_every_root_are_said_once_the_start_walks_are_done(env, tmp_path):
    """A write through a name outside every source's root reaches no target until a
    reconcile (the kernel reports the name used, which nothing watches), and status stays
    in_sync meanwhile (two breakers). The daemon says so once its start walks are done,
    naming how many files and some of their names; a reconcile repairs the bytes."""
    outside = tmp_path / "outside"
    outside.mkdir()
    write(env.src / "a.jpg", b"a0")
    os.link(env.src / "a.jpg", outside / "alias.jpg")
    write(env.src / "plain.jpg", b"one link only")
    start(env)
    text = env.log_text()
    assert 'hard-linked files have names outside every source root' in text, text
    assert "files=1" in text and "uploads:a.jpg" in text
    with open(outside / "alias.jpg", "ab") as fh:
        fh.write(b" written through the outside name")
    assert env.daemon.cli("reconcile").returncode == 0
    env.assert_exact(passes_allowed=True)
