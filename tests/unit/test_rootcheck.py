"""The root identity check (mirrord/watch/rootcheck.py): what it reports, and that a
stat(2) that hangs (a dead NFS server behind a hard mount) never holds up the caller,
the daemon's main loop."""

from __future__ import annotations

import os
import threading

from mirrord.watch.rootcheck import RootIdentity
from tests.fakes import Clock


def test_a_root_replaced_at_its_path_is_reported_once(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    clock = Clock()
    ident = RootIdentity(str(root), clock, every=1.0)
    ident.learn()
    assert not ident.moved_off()                 # not due yet
    clock.now += 1
    assert not ident.moved_off()                 # due, the same directory
    root.rename(tmp_path / "away")
    root.mkdir()                                 # another directory at the path
    assert not ident.moved_off()                 # not due again yet
    clock.now += 1
    out: list = []
    ident.check("replaced", out)
    assert [(e.kind, e.detail) for e in out] == [
        ("lost", "the source root (or a directory above it) was replaced")]
    clock.now += 1
    ident.check("replaced", out)
    assert len(out) == 1 and not ident.moved_off() and ident.next_deadline() is None  # once


def test_lost_is_reported_once_whoever_learns_it_first(tmp_path):
    """The root's own event (e.g. IN_DELETE_SELF) and the identity check both report
    through report_lost: one "lost" event, and no check after it."""
    root = tmp_path / "root"
    root.mkdir()
    clock = Clock()
    ident = RootIdentity(str(root), clock, every=1.0)
    ident.learn()
    out: list = []
    ident.report_lost("deleted", out)
    root.rmdir()
    clock.now += 5
    ident.check("replaced", out)
    ident.report_lost("moved", out)
    assert [e.detail for e in out] == ["the source root (or a directory above it) was deleted"]
    assert ident.next_deadline() is None


def test_a_stat_that_hangs_never_holds_up_the_check(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    clock, release = Clock(), threading.Event()
    calls = []

    def hanging(path):
        calls.append(path)
        release.wait()
        return os.stat(tmp_path)                 # answers at last: another directory

    ident = RootIdentity(str(root), clock, stat=hanging)
    ident.learn(os.stat(root))
    results = []
    checker = threading.Thread(target=lambda: [results.append(ident.moved_off()) or
                                               setattr(clock, "now", clock.now + 1)
                                               for _ in range(3)] and None)
    clock.now += 1
    checker.start()
    checker.join(30)                             # a bound for a hang, not a speed check
    assert not checker.is_alive(), "a check waited for the hanging stat"
    assert results == [False, False, False] and len(calls) == 1   # asked once, not again
    release.set()
    out: list = []
    for _ in range(200):                         # the answer is taken at a later check
        clock.now += 1
        ident.check("replaced", out)
        if out:
            break
    assert ident.lost and len(out) == 1 and len(calls) == 1
