"""An op that is no tree op finds nothing at the source where the target holds a directory
with files: on every target type (real services), the directory goes with what is below it.

Found by tests/unit/test_exchange_properties.py: a directory exchanged twice, the first
exchange's subtree check proposing `mkdir a/f` for a subdirectory the second exchange took
away. That mkdir ran as a delete (its path gone) before the delete of a/f/a; a delete that
is no tree op removes a directory only when empty (rmdir), so a/f stayed on the local
mirror, and the record forgot it: no row, no record, status in_sync. On S3 and the memory
target a plain delete of `d` removes the object `d` only, and the files below stayed the
same way until a reconcile. The ack now queues a tree removal of the path when the record
names anything below it (mirrord.journal.claims: _clear_below). Steps taken by hand on the
real Journal and Shipper, so each order is the one named.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal, iter_shipped
from mirrord.shipper import Shipper, serial
from tests.exactness import source_snapshot, target_snapshot
from tests.fakes import Clock
from tests.targets.conftest import make_target

S = "up"


class Site:
    """d/a and d/f/a shipped to a real target of `kind`."""

    def __init__(self, kind: str, request, tmp: Path):
        self.src = tmp / "src"
        (self.src / "d" / "f").mkdir(parents=True)
        (self.src / "d" / "a").write_bytes(b"a")
        (self.src / "d" / "f" / "a").write_bytes(b"deep")
        self.target = make_target(kind, request, tmp)
        self.target.open()
        self.t = self.target.name
        self.clock = Clock(1_800_000_000.0)
        self.j = Journal(tmp / "journal.db", {S: (self.t,)}, clock=self.clock)
        self.source = SourceConfig(S, self.src, (self.t,))
        self.shipper = Shipper({self.t: self.target}, [self.source], {self.t: 2},
                               executor=serial)
        self.enqueue(("d", "mkdir"), ("d/a", "put"), ("d/f", "mkdir"), ("d/f/a", "put"))

    def enqueue(self, *changes: tuple[str, str]) -> None:
        self.clock.now += 1
        self.j.enqueue([Change(S, path, kind) for path, kind in changes])
        for _ in range(20):
            ops = self.j.claim(self.t, 100)
            if not ops:
                break
            self.j.ack(self.shipper.run_ops(self.target, ops))
        assert self.j.claim(self.t, 100) == []

    def held(self) -> set[str]:
        return set(target_snapshot(self.target, ""))

    def recorded(self) -> set[str]:
        return {bytes(k).decode().rstrip("/") for k, *_ in iter_shipped(self.j.db, self.t, S)}

    def close(self) -> None:
        self.shipper.shutdown()
        self.j.close()
        self.target.close()


def _stale_op_ran(site: Site, stale: str) -> list:
    """`rm -r d`, a stale `stale` op of d claimed and run (d is gone when it looks), then
    d made again at the source holding d/g/new; returns the outcomes, not acked."""
    shutil.rmtree(site.src / "d")
    site.clock.now += 1
    site.j.enqueue([Change(S, "d", stale)])
    outcomes = site.shipper.run_ops(site.target, site.j.claim(site.t, 100))
    (site.src / "d" / "g").mkdir(parents=True)
    (site.src / "d" / "g" / "new").write_bytes(b"new")
    return outcomes


@pytest.fixture(params=["memory", "local", "rsync", "s3"])
def kind(request):
    return request.param


@pytest.mark.parametrize("stale", ["mkdir", "attr", "put"])
def test_an_op_finding_nothing_removes_the_directory_below_it(kind, stale, request, tmp_path):
    """`rm -r d` whose own events are not the ones that arrive: only a stale op of d
    (a subtree check's mkdir, a chmod's attr, a put of a name a directory took)."""
    site = Site(kind, request, tmp_path)
    try:
        assert {"d/a", "d/f/a"} <= site.held()
        shutil.rmtree(site.src / "d")
        site.enqueue(("d", stale))
        assert site.held() == set()
        assert site.recorded() == set()
    finally:
        site.close()


def test_a_directory_there_again_is_sent_as_it_stands(kind, request, tmp_path):
    """The tree removal the ack queues is state-based: by the time it runs, d is a
    directory again with other files; the target ends holding exactly those."""
    site = Site(kind, request, tmp_path)
    try:
        outcomes = _stale_op_ran(site, "mkdir")
        site.j.ack(outcomes)
        site.enqueue(("d", "mkdir"), ("d/g", "mkdir"), ("d/g/new", "put"))
        want = set(source_snapshot(site.src, None, directories=site.target.features.directories))
        assert site.held() == want
        assert {p for p in site.recorded()} >= {"d/g/new"}
        assert "d/f/a" not in site.recorded() and "d/a" not in site.recorded()
    finally:
        site.close()


def test_below_a_directory_an_exclude_hides_is_left(request, tmp_path):
    """`exclude = d/` added after d was shipped: the file op of the name d finds a
    directory the pattern hides, and sends the delete of the name only; what was
    shipped below it stays on the target, as a catch-up and a reconcile leave it."""
    site = Site("local", request, tmp_path)
    try:
        site.shipper.shutdown()
        site.source = SourceConfig(S, site.src, (site.t,), exclude=("d/",))
        site.shipper = Shipper({site.t: site.target}, [site.source], {site.t: 2},
                               executor=serial)
        site.enqueue(("d", "put"))
        assert {"d/a", "d/f/a"} <= site.held()
    finally:
        site.close()


def test_rows_below_in_flight_run_before_the_tree_removal(kind, request, tmp_path):
    """The delete of d/f/a is at a worker when d's stale mkdir is acked: the tree removal
    queued then waits for it (a barrier: claimed once nothing below is in flight)."""
    site = Site(kind, request, tmp_path)
    try:
        shutil.rmtree(site.src / "d")
        site.clock.now += 1
        site.j.enqueue([Change(S, "d", "mkdir"), Change(S, "d/f/a", "delete")])
        # both in flight at once, as a target without directories hands them out (with
        # directories d/f/a waits for d's row: test_ops_at_and_below_a_path.py); the tree
        # removal's own barrier must hold either way
        ops = site.j.claim(site.t, 100, directories=False)
        assert sorted(op.path for op in ops) == ["d", "d/f/a"]
        first = [op for op in ops if op.path == "d"]
        below = [op for op in ops if op.path != "d"]
        site.j.ack(site.shipper.run_ops(site.target, first))
        assert site.j.claim(site.t, 100) == []   # the tree removal waits for d/f/a
        site.j.ack(site.shipper.run_ops(site.target, below))
        site.enqueue()
        assert site.held() == set()
        assert site.recorded() == set()
        assert not os.path.lexists(site.src / "d")
    finally:
        site.close()


def test_a_row_below_queued_before_waits_for_the_tree_removal(request, tmp_path):
    """The tree removal the ack queues gets the acked row's id back when that row was the
    newest (no AUTOINCREMENT); the rows below it were linked to it, then the same ack
    freed every row waiting for the acked id, and with it those links (a review). A put
    of d/f/a queued before (not yet due) must still wait for the removal: run first, as
    when the source's deletes are held, its file would be removed after it by the tree
    removal (issue 17's order)."""
    site = Site("local", request, tmp_path)
    try:
        shutil.rmtree(site.src / "d")
        site.clock.now += 1
        site.j.enqueue([Change(S, "d/f/a", "put", delay=30.0), Change(S, "d", "mkdir")])
        (op,) = site.j.claim(site.t, 100)
        assert op.path == "d"
        outcomes = site.shipper.run_ops(site.target, [op])
        (site.src / "d" / "f").mkdir(parents=True)
        (site.src / "d" / "f" / "a").write_bytes(b"deep, written again")
        site.j.ack(outcomes)
        rows = dict(site.j.db.execute("SELECT path, id FROM ops WHERE path = ?", (b"d",)))
        waits = site.j.db.execute("SELECT wait_for FROM ops WHERE path = ?",
                                  (b"d/f/a",)).fetchone()[0]
        assert waits == rows[b"d"]
        site.clock.now += 60
        site.enqueue(("d", "mkdir"), ("d/f", "mkdir"))
        assert (Path(site.target.root) / "d" / "f" / "a").read_bytes() == b"deep, written again"
        assert site.held() == set(source_snapshot(site.src, None))
    finally:
        site.close()


def test_a_change_recorded_while_the_op_ran_runs_as_the_tree_removal(kind, request, tmp_path):
    """d is made again, its events recorded while the stale op of d was at a worker: the
    row's newer change (a mkdir) is the one that removes the old tree first."""
    site = Site(kind, request, tmp_path)
    try:
        outcomes = _stale_op_ran(site, "attr")
        site.j.enqueue([Change(S, "d", "mkdir"), Change(S, "d/g", "mkdir"),
                        Change(S, "d/g/new", "put")])
        site.j.ack(outcomes)
        assert site.j.db.execute("SELECT kind, tree FROM ops WHERE path = ?",
                                 (b"d",)).fetchone() == ("mkdir", 1)
        site.enqueue()
        want = set(source_snapshot(site.src, None, directories=site.target.features.directories))
        assert site.held() == want
        assert "d/f/a" not in site.recorded() and "d/g/new" in site.recorded()
    finally:
        site.close()
