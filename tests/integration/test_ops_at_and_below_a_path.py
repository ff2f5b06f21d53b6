"""A row at a path P in flight while a row below P runs: on the real Journal, Shipper and
LocalTarget with keep_deleted on, the workers' order forced by hand.

Found by tests/e2e/test_trash_breakit.py (1 run in 16): with the file `d` mirrored, `rm d;
mkdir d; echo > d/z.jpg`. The delete of d was claimed before the rest was read; its worker,
looking at the source, found a directory and made it (keeping the file d first). The put
of d/z.jpg, claimed meanwhile, ran on another worker: its parent walk replaced the file d
with the directory d and wrote z.jpg into it. The first worker's keep had seen d as a
file (lstat) and then renamed what stood at d into the trash: the new directory, z.jpg
with it. The mirror ended with d empty, and nothing queued would bring z.jpg back before
a reconcile. A worker at P may change what P is on the target (it sends what it finds at
the source then), and a worker below P needs P to be a directory: so on a target with
directories no row is handed out while a row at one of its ancestors, or below it, is in
flight (mirrord.journal.barriers.InFlight). Each shape here has the other worker's ops
land in that window of the first worker's keep (between its lstat and its rename): no
timing is involved.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal, Outcome
from mirrord.shipper import Shipper, serial
from mirrord.targets import local_trash
from mirrord.targets.local import LocalTarget
from mirrord.trash.keeper import KeepPolicy
from mirrord.trash.model import DELETED
from tests.exactness import differences, source_snapshot, target_snapshot
from tests.fakes import Clock
from tests.integration.test_shipper_tree_race import _drain

S, T = "up", "local"


@pytest.fixture
def site(tmp_path: Path):
    """`d` (a file) and `e/old.jpg` shipped to a LocalTarget with keep_deleted on; a real
    Journal on a fake clock and a Shipper whose batches run on the caller's thread:
    (src, journal, shipper, target)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "d").write_bytes(b"d is a file")
    (src / "e").mkdir()
    (src / "e" / "old.jpg").write_bytes(b"old")
    target = LocalTarget(T, tmp_path / "mirror", fsync=False)
    target.open()
    j = Journal(tmp_path / "journal.db", {S: (T,)}, clock=Clock(1_800_000_000.0))
    shipper = Shipper({T: target}, [SourceConfig(S, src, (T,))], {T: 2}, executor=serial,
                      keep={T: KeepPolicy(86400.0)})
    j.enqueue([Change(S, "d", "put"), Change(S, "e", "mkdir"), Change(S, "e/old.jpg", "put")])
    _drain(j, shipper, target)
    try:
        yield src, j, shipper, target
    finally:
        j.close()
        target.close()


def _ship_claiming_in_the_keep_window(j: Journal, shipper: Shipper, target: LocalTarget,
                                      then, monkeypatch) -> list:
    """Claim and run what is ready; inside the first keep that renames (between its lstat
    and its rename: LocalTrash._keep_at's `_exists` check), `then()` changes the source
    and queues its changes, and whatever the journal hands out now runs to its end, as
    another worker would. The outcomes of both, acked; the rows claimed meanwhile."""
    real, late = local_trash._exists, []

    def window(name, dst):
        monkeypatch.setattr(local_trash, "_exists", real)
        then()
        ops = j.claim(T, 100)
        late.extend(ops)
        j.ack(shipper.run_ops(target, ops))
        return real(name, dst)

    monkeypatch.setattr(local_trash, "_exists", window)
    j.ack(shipper.run_ops(target, j.claim(T, 100)))
    monkeypatch.setattr(local_trash, "_exists", real)
    _drain(j, shipper, target)
    return late


def _kept(target: LocalTarget) -> dict:
    return {(k.path, k.why): (Path(target.root) / k.key).read_bytes() for k in target.trash_list()}


@pytest.mark.parametrize("first", ["delete", "put", "mkdir"])
def test_a_row_below_waits_while_its_parents_row_is_in_flight(site, first, monkeypatch):
    """The row at d claimed and its worker finding a directory at the source: the file's
    delete (the e2e failure), a put of the file's new bytes read before it went, or `rm d;
    mkdir d` read as one mkdir; `echo > d/z.jpg` is read while it runs."""
    src, j, shipper, target = site
    if first == "put":
        (src / "d").write_bytes(b"d, written again")
    j.enqueue([Change(S, "d", first)])
    (src / "d").unlink()
    (src / "d").mkdir()
    changes = [Change(S, "d/z.jpg", "put")]
    if first != "mkdir":
        changes.insert(0, Change(S, "d", "mkdir"))

    def then():
        (src / "d" / "z.jpg").write_bytes(b"z")
        j.enqueue(changes)

    late = _ship_claiming_in_the_keep_window(j, shipper, target, then, monkeypatch)
    assert [op.path for op in late] == [], "a row below d handed out while d's row was in flight"
    assert differences(source_snapshot(src), target_snapshot(target)) == {}
    assert _kept(target) == {("d", DELETED): b"d is a file"}


def test_a_row_at_a_directory_waits_while_a_row_below_it_is_in_flight(site):
    """The reverse: a put below e is in flight when a change of e itself (its mode) is
    read. e's worker would send whatever e is at the source by then: a file, were e
    replaced meanwhile, put over the directory the other worker writes into."""
    src, j, shipper, target = site
    (src / "e" / "new.jpg").write_bytes(b"new")
    j.enqueue([Change(S, "e/new.jpg", "put")])
    first = j.claim(T, 100)
    assert [op.path for op in first] == ["e/new.jpg"]
    os.chmod(src / "e", 0o750)
    j.enqueue([Change(S, "e", "attr")])
    assert j.claim(T, 100) == [], "e's row handed out while a row below e was in flight"
    j.ack(shipper.run_ops(target, first))
    assert [op.path for op in j.claim(T, 100)] == ["e"]


def test_rows_claimed_together_never_overlap(site):
    """In one claim: of d's row and the rows below it, only d's goes out; the rows below
    go once it is acked (a batch's ops may run on different workers)."""
    src, j, shipper, target = site
    (src / "d").unlink()
    (src / "d").mkdir()
    (src / "d" / "z.jpg").write_bytes(b"z")
    (src / "d" / "w.jpg").write_bytes(b"w")
    j.enqueue([Change(S, "d", "mkdir"), Change(S, "d/z.jpg", "put"), Change(S, "d/w.jpg", "put"),
               Change(S, "e/old.jpg", "delete")])
    (src / "e" / "old.jpg").unlink()
    ops = j.claim(T, 100)
    assert sorted(op.path for op in ops) == ["d", "e/old.jpg"]
    j.ack(shipper.run_ops(target, ops))
    assert sorted(op.path for op in j.claim(T, 100)) == ["d/w.jpg", "d/z.jpg"]


def test_a_target_without_directories_waits_only_where_a_key_is_written(tmp_path):
    """On a target without directories (S3) a key and the keys below its name stand side
    by side, but SeaweedFS lost a put below `d/` sent beside a delete or put of `d`
    (mirrord.journal.key_overlaps): d/z.jpg waits for d's delete in flight. A new
    directory's mkdir writes nothing: its files go beside it."""
    j = Journal(tmp_path / "journal.db", {S: (T,)}, clock=Clock(1_800_000_000.0))
    try:
        j.enqueue([Change(S, "d", "delete")])
        held = j.claim(T, 100, directories=False)
        assert [op.path for op in held] == ["d"]
        j.enqueue([Change(S, "d/z.jpg", "put")])
        assert j.claim(T, 100, directories=False) == []
        j.ack([Outcome(op, "delete") for op in held])
        assert [op.path for op in j.claim(T, 100, directories=False)] == ["d/z.jpg"]
        j.enqueue([Change(S, "n", "mkdir"), Change(S, "n/a.jpg", "put")])
        assert sorted(op.path for op in j.claim(T, 100, directories=False)) == ["n", "n/a.jpg"]
    finally:
        j.close()
