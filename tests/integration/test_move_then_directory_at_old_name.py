"""A file renamed, and a directory made at once under its old name: the rename goes out as
a move and nothing is kept; on the real Journal, Shipper and LocalTarget with keep_deleted
on, the workers' order forced by hand.

Found by tests/e2e/test_versioned_moves_keep_nothing.py (the file-then-directory shape,
once in two full runs): `mv f f.bak; mkdir f; echo > f/inner.jpg` read together left the
local target keeping f as 'deleted', though its bytes lived on at f.bak. The move f ->
f.bak and the put of f/inner.jpg were claimed together, so a target's workers ran them side
by side: the put reached the target first, found the FILE f where its parent directory
goes and kept it ('deleted', keeper.keep_items' parent keep) to make the directory; the
move then found nothing at f (NotFound) and f.bak was sent whole. A file's move is a
barrier over its old name now (mirrord.journal.barriers): rows queued below it after the
move wait for it, so whatever order the workers take, the move is made first.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper, serial
from mirrord.targets.local import LocalTarget
from mirrord.trash.keeper import KeepPolicy
from tests.exactness import differences, source_snapshot, target_snapshot
from tests.fakes import Clock
from tests.integration.test_shipper_tree_race import _drain

S, T = "up", "local"


@pytest.fixture
def site(tmp_path: Path):
    """`f` (a file) shipped to a LocalTarget with keep_deleted on; a real Journal on a fake
    clock and a Shipper whose batches run on the caller's thread: (src, journal, shipper,
    target)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"a file called f")
    target = LocalTarget(T, tmp_path / "mirror", fsync=False)
    target.open()
    j = Journal(tmp_path / "journal.db", {S: (T,)}, clock=Clock(1_800_000_000.0))
    shipper = Shipper({T: target}, [SourceConfig(S, src, (T,))], {T: 2}, executor=serial,
                      keep={T: KeepPolicy(86400.0)})
    j.enqueue([Change(S, "f", "put")])
    _drain(j, shipper, target)
    try:
        yield src, j, shipper, target
    finally:
        j.close()
        target.close()


def _run_last_first(shipper, target, ops) -> list:
    """Each op its own batch, the last claimed first: the worst order a target's workers
    (two batches side by side) can take what is claimed together."""
    outcomes = []
    for op in reversed(ops):
        outcomes += shipper.run_ops(target, [op])
    return outcomes


def _run_between_keep_and_sync(shipper, target, ops, monkeypatch) -> list:
    """The last op claimed runs first, and the others run while its worker is paused right
    after its first keep (a put's parent walk keeps what stands in its way, then makes the
    directory): the e2e failure's interleaving."""
    outcomes, first, rest = [], ops[-1], ops[:-1]
    real = target.keep

    def paused(*args, **kwargs):
        monkeypatch.setattr(target, "keep", real)
        kept = real(*args, **kwargs)
        for op in rest:
            outcomes.extend(shipper.run_ops(target, [op]))
        return kept

    monkeypatch.setattr(target, "keep", paused)
    outcomes += shipper.run_ops(target, [first])
    monkeypatch.setattr(target, "keep", real)
    if rest and not any(o.op in rest for o in outcomes):   # no keep on the way: in turn
        outcomes += _run_last_first(shipper, target, rest)
    return outcomes


@pytest.mark.parametrize("order", ["last first", "between keep and sync"])
def test_a_directory_at_a_moved_files_old_name_waits_for_the_move(site, order, monkeypatch):
    src, j, shipper, target = site
    os.rename(src / "f", src / "f.bak")
    (src / "f").mkdir()
    (src / "f" / "inner.jpg").write_bytes(b"inside the directory f")
    assert j.enqueue_move(S, "f", "f.bak", is_dir=False) == []      # kept as a move
    j.enqueue([Change(S, "f", "mkdir"), Change(S, "f/inner.jpg", "put")])
    ops = j.claim(T, 100)
    if order == "last first":
        outcomes = _run_last_first(shipper, target, ops)
    else:
        outcomes = _run_between_keep_and_sync(shipper, target, ops, monkeypatch)
    j.ack(outcomes)
    _drain(j, shipper, target)
    kept = [(k.path, k.why) for k in target.trash_list()]
    assert kept == [], "f kept though its bytes are at f.bak"
    assert differences(source_snapshot(src), target_snapshot(target)) == {}
    assert [(o.op.path, o.shipped_kind) for o in outcomes if o.op.kind == "move"] == [
        ("f.bak", "move")], "the move was not made on the target: f.bak sent whole"


def test_rows_below_a_moved_files_old_name_wait_for_the_move_after_a_restart(tmp_path):
    """The barrier is the journal's, so it is rebuilt from the database at open
    (load_barriers) like a directory move's."""
    path = tmp_path / "journal.db"
    j = Journal(path, {S: (T,)}, clock=Clock(1_800_000_000.0))
    j.enqueue_move(S, "f", "f.bak", is_dir=False)
    j.close()
    j = Journal(path, {S: (T,)}, clock=Clock(1_800_000_000.0))
    try:
        j.enqueue([Change(S, "f", "mkdir"), Change(S, "f/inner.jpg", "put")])
        assert [(op.path, op.kind) for op in j.claim(T, 100)] == [("f.bak", "move")]
    finally:
        j.close()
