"""An exchange of two files, or a rotation of two directories through a temp name, with a
comparison run in the middle: nothing is kept, on the real Journal and Shipper, catch-up
and reconcile, on every target type (memory, local, rsync over sshd, S3 in 'copy' mode, a
versioned bucket), keep_deleted on.

Found in CI (tests/e2e/test_rename_fallback_keeps_nothing.py, a versioned bucket beside a
local directory, 1 run in 3 or 4): the daemon's start pass compared the local target
while the test exchanged its files. Its put of each name was recorded between the
exchange's move and the watcher's writes; the put of `a` over its pending delete took the
other name from it, and the live write after it cleared that (a put over a put), so
both names were kept as 'overwritten'. A put over an unsent put keeps the other end now
(journal EnqueueMixin._upsert; tests/unit/test_rename_fallback_keeps_nothing.py). The
comparison here is recorded before the watcher's records, between them or after them,
as the scanner thread's proposals arrive at any point of the main thread's.

Found writing these: `mv d1 x; mv d2 d1; mv x d2` with the move d1 -> x in flight and a
catch-up read in between kept all of d1 as 'directory removed'. The catch-up's mkdir of x
took the move's row, through which d1's tree removal found its new name; the removal
carries that name itself now (EnqueueMixin._hand_on_new_name).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import pytest

from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper
from tests.integration.test_dir_rotation_keeps_nothing import (  # noqa: F401 (target)
    drain, exact, kept, rename, target)
from tests.integration.test_rename_then_proposals_keep_nothing import compare, shipped_site
from tests.unit.test_exchange_properties import exchange_names

S = "up"
N = 3


@pytest.fixture
def site(tmp_path: Path, target):  # noqa: F811 - the fixture imported above
    """a, c (other sizes) and d1/f*, d2/f* shipped to `target` with keep_deleted on
    (test_rename_then_proposals_keep_nothing.shipped_site)."""
    files = {"a": b"a's bytes\n" * 30, "c": b"c's bytes, longer\n" * 40}
    files |= {f"{d}/f{i}": f"{d} file {i}\n".encode() * (i + 2) for d in ("d1", "d2")
              for i in range(N)}
    yield from shipped_site(tmp_path, target, files)


def shipped_exactly(src: Path, j: Journal, shipper: Shipper, target) -> list[tuple[str, int]]:
    """Every recorded op shipped, retried as the daemon retries (a delete that finds its
    file back at the source waits a try for the change that made it, ship_rules: the
    journal's clock is moved past that wait); the target then mirrors `src` exactly.
    What it kept."""
    for _ in range(5):
        drain(j, shipper, target)
        if not j.db.execute("SELECT COUNT(*) FROM ops").fetchone()[0]:
            break
        j.clock.now += 3600
    assert j.db.execute("SELECT COUNT(*) FROM ops").fetchone()[0] == 0
    assert exact(src, target) == {}
    return kept(target)


ORDERS = ["compared-first", "compared-between", "compared-last"]


@pytest.mark.parametrize("how", ["catch-up", "reconcile"])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("watcher", ["fanotify", "inotify"])
@pytest.mark.parametrize("tick", [False, True], ids=["one-second", "move-a-second-earlier"])
def test_an_exchange_with_a_comparison_in_the_middle_keeps_nothing(site, how, order, watcher,
                                                                   tick):
    """fanotify reads an exchange as a move a -> c and a write of each name; inotify as
    two moves, the second a fallback (c's row is pending). The move recorded a second
    before the rest, or in the same second."""
    src, j, shipper, target, cfg, source = site
    exchange_names(src, "a", "c")
    proposed = compare(how, j, target, cfg, source)
    assert {(ch.kind, ch.path) for ch in proposed} >= {("put", "a"), ("put", "c")}, proposed
    if order == "compared-first":
        j.enqueue(proposed)
    j.enqueue_move(S, "a", "c", is_dir=False)
    if tick:
        j.clock.now = next_second(j, proposed)
        proposed = [replace(ch, time=None) for ch in proposed]
    if order == "compared-between":
        j.enqueue(proposed)
    if watcher == "fanotify":
        j.enqueue([Change(S, "a", "put"), Change(S, "c", "put")])
    else:
        j.enqueue_move(S, "c", "a", is_dir=False)
    if order == "compared-last":
        j.enqueue(proposed)
    assert shipped_exactly(src, j, shipper, target) == [], "an exchange was kept"


@pytest.mark.parametrize("how", ["catch-up", "reconcile"])
@pytest.mark.parametrize("at", [1, 2, 3])
@pytest.mark.parametrize("order", ["as-read", "recorded-last"])
@pytest.mark.parametrize("move_in_flight", [False, True], ids=["read-together", "move-in-flight"])
@pytest.mark.parametrize("tick", [False, True], ids=["one-second", "a-second-each"])
def test_a_rotation_with_a_comparison_in_the_middle_keeps_nothing(site, how, at, order,
                                                                 move_in_flight, tick):
    """`mv d1 x; mv d2 d1; mv x d2`, a comparison read after the `at`-th rename and
    recorded then ('as-read') or after the watcher's records of all three; the first
    rename's move claimed before the rest is read, and shipped after ('move-in-flight').
    Each rename recorded in a second of its own, or all in one."""
    src, j, shipper, target, cfg, source = site
    proposed: list[Change] = []
    claimed = None
    if tick:   # not ahead of the wall clock at the end: a versioned bucket stamps by its own
        j.clock.now = math.floor(j.clock()) - 3.75
    for n, (a, b) in enumerate((("d1", "x"), ("d2", "d1"), ("x", "d2")), start=1):
        rename(src, j, a, b)
        if tick:
            j.clock.now += 1
        if n == 1 and move_in_flight:
            claimed = j.claim(target.name, 100)
        if n == at:
            proposed = compare(how, j, target, cfg, source)
            if order == "as-read":
                j.enqueue(proposed)
    if order == "recorded-last":
        j.enqueue(proposed)
    if claimed:
        j.ack(shipper.run_ops(target, claimed))
    assert shipped_exactly(src, j, shipper, target) == [], "a rotation was kept"


def next_second(j: Journal, changes: list[Change]) -> float:
    """A time in the second after the journal's clock and the latest of `changes`."""
    return math.floor(max([j.clock()] + [ch.time or 0 for ch in changes])) + 1.25


def a_second_later(j: Journal, changes: list[Change], kind: str) -> list[Change]:
    """`changes` with those of `kind` stamped in the second after the latest of them and
    the journal's clock: a reconcile pass proposes its deletes once its walk is done,
    minutes after the puts on a large tree, and live events straddle a second's edge."""
    later = next_second(j, changes)
    return [replace(ch, time=later) if ch.kind == kind else ch for ch in changes]


@pytest.mark.parametrize("how", ["catch-up", "reconcile"])
@pytest.mark.parametrize("move_in_flight", [False, True], ids=["read-together", "move-in-flight"])
@pytest.mark.parametrize("deletes", ["same-second", "next-second"])
def test_a_file_rotation_compared_mid_way_keeps_nothing(site, how, move_in_flight, deletes):
    """`mv a t; mv c a; mv t c`, a comparison read after the second rename (a put of a and
    t, a delete of c) and recorded after all three: its delete of c, recorded over the
    third rename's put of c that names a, kept that name (a review, helper-134: both a
    and c were kept as 'overwritten'). The delete proposed in the second after the puts
    kept a: the version the put of a kept was looked for from the delete's second on (CI,
    1 run in 10; swaps.bound)."""
    src, j, shipper, target, cfg, source = site
    claimed = None
    proposed: list[Change] = []
    for n, (a, b) in enumerate((("a", "t"), ("c", "a"), ("t", "c")), start=1):
        os.rename(src / a, src / b)
        j.enqueue_move(S, a, b, is_dir=False)
        if n == 1 and move_in_flight:
            claimed = j.claim(target.name, 100)
        if n == 2:
            proposed = compare(how, j, target, cfg, source)
            assert {(ch.kind, ch.path) for ch in proposed} >= {("delete", "c"), ("put", "a")}
    if deletes == "next-second":
        proposed = a_second_later(j, proposed, "delete")
    j.enqueue(proposed)
    if claimed:
        j.ack(shipper.run_ops(target, claimed))
    assert shipped_exactly(src, j, shipper, target) == [], "a rotation of files was kept"


@pytest.mark.parametrize("watcher", ["fanotify", "inotify"])
def test_an_exchange_with_its_move_in_flight_keeps_nothing(site, watcher):
    """No comparison: `mv --exchange a c` with the move a -> c claimed before the rest is
    read. The move keeps c's old bytes ('overwritten', keeper.keep_move_dst) and takes a
    away, so a's put found nothing at a and dropped its hint (keeper._hinted): c's old
    bytes, which the put brings to a, stayed kept (a review, helper-135)."""
    src, j, shipper, target, cfg, source = site
    exchange_names(src, "a", "c")
    j.enqueue_move(S, "a", "c", is_dir=False)
    claimed = j.claim(target.name, 100)
    assert [(op.path, op.kind) for op in claimed] == [("c", "move")]
    if watcher == "fanotify":
        j.enqueue([Change(S, "a", "put"), Change(S, "c", "put")])
    else:
        j.enqueue_move(S, "c", "a", is_dir=False)
    j.ack(shipper.run_ops(target, claimed))
    assert shipped_exactly(src, j, shipper, target) == [], "an exchange was kept"


@pytest.mark.parametrize("move_in_flight", [False, True], ids=["read-together", "move-in-flight"])
@pytest.mark.parametrize("watcher", ["fanotify", "inotify"])
def test_an_exchange_read_across_a_seconds_edge_keeps_nothing(site, watcher, move_in_flight):
    """No comparison: `mv --exchange a c` whose move a -> c is recorded in one second and
    the rest in the next. The versions the exchange kept are stamped from the move's
    second on, and the put that drops them looked only from its own."""
    src, j, shipper, target, cfg, source = site
    exchange_names(src, "a", "c")
    j.enqueue_move(S, "a", "c", is_dir=False)
    claimed = j.claim(target.name, 100) if move_in_flight else None
    j.clock.now = next_second(j, [])
    if watcher == "fanotify":
        j.enqueue([Change(S, "a", "put"), Change(S, "c", "put")])
    else:
        j.enqueue_move(S, "c", "a", is_dir=False)
    if claimed:
        j.ack(shipper.run_ops(target, claimed))
    assert shipped_exactly(src, j, shipper, target) == [], "an exchange was kept"
