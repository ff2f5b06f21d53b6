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
    assert ident.moved_off()
    clock.now += 1
    assert not ident.moved_off() and ident.next_deadline() is None    # told once


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
    for _ in range(200):                         # the answer is taken at a later check
        clock.now += 1
        if ident.moved_off():
            break
    assert ident.gone and len(calls) == 1
