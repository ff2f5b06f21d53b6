"""Which watcher a source gets (mirrord/watch/select.py) on the real kernel: `auto` and
`fanotify` hand the probe's fanotify group to the watcher (closing a group with a
filesystem mark waits for an SRCU grace period, which is time to watching on a busy
file system: issue 18), `auto`
takes inotify when a file system is mounted below the root, and no group is left open
on any path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.errors import FatalError
from mirrord.watch.fanotify import FanotifyWatcher
from mirrord.watch.inotify import TreeWatcher
from mirrord.watch.select import choose, open_watcher
from tests.fanotify_marks import fanotify_root


def fanotify_fds() -> set[int]:
    """This process's open fanotify group fds (anon_inode:[fanotify], proc(5))."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[fanotify]":
                found.add(int(fd))
        except OSError:
            pass
    return found


@pytest.fixture
def src(tmp_path) -> Path:
    return fanotify_root(tmp_path)


@pytest.mark.parametrize("watcher", ["auto", "fanotify"])
def test_the_probe_group_is_the_watchers_group(src, watcher, monkeypatch):
    from mirrord.watch import fanotify_sys
    inits: list[int] = []
    real = fanotify_sys.fanotify_init

    def counting(*a, **kw):
        inits.append(real(*a, **kw))
        return inits[-1]
    monkeypatch.setattr(fanotify_sys, "fanotify_init", counting)
    before = fanotify_fds()
    w = open_watcher(SourceConfig("up", src, ("t",), watcher=watcher))
    try:
        assert isinstance(w, FanotifyWatcher)
        assert inits == [w.fd]      # one group made: the probe's, taken over
        assert fanotify_fds() - before == {w.fd}
        w.start()
        (src / "a.jpg").write_bytes(b"a")
        got = []
        for _ in range(100):
            got += w.read(100)
            if any(e.path == "a.jpg" for e in got):
                break
        assert ("write", "a.jpg") in {(e.kind, e.path) for e in got}
    finally:
        w.close()
    assert fanotify_fds() == before


def test_inotify_opens_no_fanotify_group(src):
    before = fanotify_fds()
    backend, _why, group = choose(SourceConfig("up", src, ("t",), watcher="inotify"))
    assert (backend, group) == ("inotify", None) and fanotify_fds() == before


def test_auto_with_a_mount_below_takes_inotify_and_closes_the_probe(src):
    (src / "mnt").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(src / "mnt")],
                   check=True)
    try:
        before = fanotify_fds()
        w = open_watcher(SourceConfig("up", src, ("t",), watcher="auto"))
        try:
            assert isinstance(w, TreeWatcher)
            assert fanotify_fds() == before
        finally:
            w.close()
    finally:
        subprocess.run(["umount", "-l", str(src / "mnt")], check=False)


def test_fanotify_refused_raises_and_leaves_no_group(src, monkeypatch):
    from mirrord.watch import fanotify_probe

    def refused(*a, **kw):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(fanotify_probe.S, "open_by_handle", refused)
    before = fanotify_fds()
    with pytest.raises(FatalError, match="CAP_DAC_READ_SEARCH"):
        choose(SourceConfig("up", src, ("t",), watcher="fanotify"))
    backend, why, group = choose(SourceConfig("up", src, ("t",), watcher="auto"))
    assert (backend, group) == ("inotify", None) and "CAP_DAC_READ_SEARCH" in why
    assert fanotify_fds() == before


@pytest.mark.parametrize("watcher", ["auto", "fanotify"])
def test_the_reason_says_whether_the_queue_is_bounded(src, watcher):
    """The watcher line names the queue the group got (FAN_UNLIMITED_QUEUE or the bounded
    one): the probe's words were dropped, and a bounded queue went unsaid (a breaker)."""
    backend, why, group = choose(SourceConfig("up", src, ("t",), watcher=watcher))
    try:
        assert backend == "fanotify" and ("unlimited queue" in why or "bounded queue" in why), why
        assert ("unlimited queue" in why) == group[1]
    finally:
        os.close(group[0])
