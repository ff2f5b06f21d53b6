"""Directories exchanged or renamed while work below them is still in flight, in shapes
next to tests/e2e/test_exchange_in_flight.py (which covers D1 <-> D2 with D2/sub in flight):
the target must be exact once the daemon is idle, every row drained. All held (a
breaker's check of EnqueueMixin._rerun_in_flight, kept as a regression test; the chain
shape failed once in about 15 runs, an empty D3/sub3 left on the local target; that run's
log was not kept, the machine was loaded, and another run then failed only because another
process had used up fs.inotify.max_user_watches; not reproduced since).

Shapes (each with a 6 MiB file in flight below a directory, so the rsync host is still
sending when the rename happens):
- file_dir: a file F and a directory D are exchanged (F becomes the directory, D the file)
  while D/sub/deep.txt is in flight;
- chain: D1 <-> D2, then D2 <-> D3 right after, with D2/sub and D3/sub3 in flight;
- both_busy: D1/s1 and D2/s2 both in flight, D1 <-> D2;
- across: D1 and P/D2 (another parent) exchanged with P/D2/sub in flight;
- renamed_away: D2 renamed to D3 while D2/sub is in flight, a new D2 made at once;
- file_over_emptied: D/a (holding s/f) and the empty D/b exchanged twice, then D/b removed
  and s/f renamed over its name (a file where a directory was, while a check of the
  directory is asked for: tests/integration/test_watch_hypothesis.py drew it).
"""

from __future__ import annotations

import os
import time

import pytest

from tests.e2e.test_exact_stream import env, start  # noqa: F401 - env: the fixture (both watchers)
from tests.e2e.test_exchange_in_flight import exchange, write
from tests.exactness import wait_exact
from tests.reliability.conftest import excluded, poll

BIG = 6 << 20


def file_dir(rel):
    write(rel / "F", b"a file")
    write(rel / "D" / "x.txt", b"x")
    write(rel / "D" / "sub" / "deep.txt", os.urandom(BIG))
    time.sleep(0.1)
    exchange(rel / "F", rel / "D")


def chain(rel):
    write(rel / "D1" / "one.txt", b"one")
    write(rel / "D2" / "sub" / "deep.txt", os.urandom(BIG))
    write(rel / "D3" / "sub3" / "deep3.txt", os.urandom(BIG))
    time.sleep(0.1)
    exchange(rel / "D1", rel / "D2")
    time.sleep(0.05)
    exchange(rel / "D2", rel / "D3")


def both_busy(rel):
    write(rel / "D1" / "s1" / "a.bin", os.urandom(BIG))
    write(rel / "D2" / "s2" / "b.bin", os.urandom(BIG))
    time.sleep(0.1)
    exchange(rel / "D1", rel / "D2")


def across(rel):
    write(rel / "D1" / "one.txt", b"one")
    write(rel / "P" / "D2" / "sub" / "deep.txt", os.urandom(BIG))
    time.sleep(0.1)
    exchange(rel / "D1", rel / "P" / "D2")


def renamed_away(rel):
    write(rel / "D2" / "sub" / "deep.txt", os.urandom(BIG))
    time.sleep(0.1)
    os.rename(rel / "D2", rel / "D3")
    write(rel / "D2" / "other.txt", b"other")


def file_over_emptied(rel):
    (rel / "D" / "b").mkdir(parents=True)
    write(rel / "D" / "a" / "s" / "f", b"in")
    write(rel / "D" / "a" / "s" / "big.bin", os.urandom(BIG))
    time.sleep(0.1)
    exchange(rel / "D" / "b", rel / "D" / "a")
    time.sleep(0.2)
    exchange(rel / "D" / "a", rel / "D" / "b")
    os.rmdir(rel / "D" / "b")
    os.rename(rel / "D" / "a" / "s" / "f", rel / "D" / "b")


@pytest.mark.parametrize("shape", [file_dir, chain, both_busy, across, renamed_away,
                                   file_over_emptied],
                         ids=lambda f: f.__name__)
def test_exact_after_renames_over_work_in_flight(env, shape):
    start(env)
    for i in range(2):
        shape(env.src / f"release{i}")
    poll(env.drained, timeout=180, what="the backlog drained")
    for target in env.targets.values():
        wait_exact(env.src, target, timeout=60, excluded=excluded)
