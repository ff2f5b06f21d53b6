"""A rename recorded while an op on one of its ends is in flight stays a move, and a
reconcile's proposal never sends again what is already queued or in flight.

Found under load by tests/e2e/test_operations.py (either watcher backend): a file renamed
right after it reached the target, before its ack was recorded, became a delete plus a
second send; and the start reconcile pass, listing the target while the catch-up's puts
were in flight, moved those rows on so the same files went twice."""

from __future__ import annotations



from mirrord.journal import Change, Journal, Outcome

S, T = "up", "t"


# the journal on a real SQLite file, with a fake clock: the fixtures of test_journal.py
from tests.unit.test_journal import clock, j  # noqa: E402,F401  (pytest fixtures)


def kinds(ops) -> list[tuple[str, str]]:
    return sorted((op.path, op.kind) for op in ops)


def ack(j: Journal, ops, kind: str = "put", **kw) -> None:
    j.ack([Outcome(op, kind, **kw) for op in ops])


def test_a_file_renamed_while_its_put_is_in_flight_is_a_move_after_the_put(j):
    j.enqueue([Change(S, "a", "put")])
    inflight = j.claim(T, 10)
    assert j.enqueue_move(S, "a", "b", is_dir=False) == []    # kept as a move
    assert j.claim(T, 10) == []          # the move waits for the put of its source end
    ack(j, inflight, size=4, mtime_ns=7)
    (mv,) = j.claim(T, 10)
    assert (mv.path, mv.kind, mv.src) == ("b", "move", "a")
    assert mv.src_shipped == (4, 7, None)   # what the put shipped: the move checks it
    ack(j, [mv], "move", size=4, mtime_ns=7)
    (rm,) = j.claim(T, 10)
    assert (rm.path, rm.kind) == ("a", "delete")


def test_a_rename_over_a_file_whose_put_is_in_flight_waits_for_that_put(j):
    j.enqueue([Change(S, "b", "put")])
    inflight = j.claim(T, 10)
    assert j.enqueue_move(S, "a", "b", is_dir=False) == []
    assert j.claim(T, 10) == []          # b's row is the one in flight: not claimed twice
    ack(j, inflight)
    (mv,) = j.claim(T, 10)
    assert (mv.path, mv.kind, mv.src) == ("b", "move", "a")


def test_a_chain_of_renames_with_the_first_in_flight_is_two_moves(j):
    assert j.enqueue_move(S, "a", "b", is_dir=False) == []
    (first,) = j.claim(T, 10)
    assert (first.path, first.kind) == ("b", "move")
    assert j.enqueue_move(S, "b", "c", is_dir=False) == []
    assert j.claim(T, 10) == []          # b -> c waits for a -> b
    ack(j, [first], "move", size=1, mtime_ns=1)
    (second,) = j.claim(T, 10)
    assert (second.path, second.kind, second.src) == ("c", "move", "b")
    assert second.src_shipped == (1, 1, None)
    ack(j, [second], "move", size=1, mtime_ns=1)
    assert kinds(j.claim(T, 10)) == [("b", "delete")]   # then a's delete, after b's


def test_a_rename_with_a_pending_put_still_falls_back(j):
    j.enqueue([Change(S, "a", "put")])           # never claimed: the target has no a
    assert j.enqueue_move(S, "a", "b", is_dir=False) == [T]


def test_a_directory_with_work_in_flight_below_still_falls_back(j):
    j.enqueue([Change(S, "d/x", "put")])
    j.claim(T, 10)
    assert j.enqueue_move(S, "d", "e", is_dir=True) == [T]   # no check covers what is below


def test_a_repair_leaves_a_put_in_flight_alone(j):
    j.enqueue([Change(S, "a", "put")])
    inflight = j.claim(T, 10)
    assert j.enqueue([Change(S, "a", "put", targets=(T,), repair=True)]) == 0
    ack(j, inflight)
    assert j.claim(T, 10) == []                   # the row is gone: sent once


def test_a_live_change_still_moves_an_op_in_flight_on(j):
    j.enqueue([Change(S, "a", "put")])
    inflight = j.claim(T, 10)
    j.enqueue([Change(S, "a", "put")])            # the file changed again: send it again
    ack(j, inflight)
    assert kinds(j.claim(T, 10)) == [("a", "put")]


def test_a_repair_strengthens_a_pending_attr_and_is_recorded_where_no_row_is(j):
    j.enqueue([Change(S, "a", "attr")])
    assert j.enqueue([Change(S, "a", "put", repair=True), Change(S, "b", "put", repair=True)]) == 2
    assert kinds(j.claim(T, 10)) == [("a", "put"), ("b", "put")]


def test_a_tree_removal_that_became_a_file_put_never_runs_beside_a_put_below(j):
    """`rmdir d; echo > d` while a put of d/x is queued: one row for d, a put that first
    removes the tree. It stays a barrier (barriers.py), so d/x and d never go out together
    (a tester's dir flip kept one version of d/x twice, in one batch)."""
    j.enqueue([Change(S, "d/x", "put")])
    j.enqueue([Change(S, "d/x", "delete"), Change(S, "d", "delete", tree=True),
               Change(S, "d", "put")])
    (first,) = j.claim(T, 10)       # d/x, queued before it, waits for it (_wait_below)
    assert (first.path, first.kind, first.tree) == ("d", "put", True)
    j.enqueue([Change(S, "d/y", "put")])                # below the tree put in flight: waits
    assert j.claim(T, 10) == []
    ack(j, [first])
    assert kinds(j.claim(T, 10)) == [("d/x", "delete"), ("d/y", "put")]


def test_a_tree_put_is_still_a_barrier_after_a_restart(tmp_path, clock):
    path = tmp_path / "state" / "journal.db"
    jr = Journal(path, {S: (T,)}, clock=clock)
    jr.enqueue([Change(S, "d", "delete", tree=True), Change(S, "d", "put")])
    jr.close()
    jr = Journal(path, {S: (T,)}, clock=clock)
    try:
        jr.enqueue([Change(S, "d/y", "put")])
        assert kinds(jr.claim(T, 10)) == [("d", "put")]   # d/y waits for the tree put
    finally:
        jr.close()


def test_a_repair_takes_a_failed_row_out_of_its_backoff(j, clock):
    """A reconcile re-queues what waits after failures at once (the bucket recreated
    under a running daemon): only ops in flight are left alone."""
    j.enqueue([Change(S, "a", "put")])
    (op,) = j.claim(T, 10)
    j.ack([Outcome(op, error="NoSuchBucket", permanent=True)])
    assert j.claim(T, 10) == []                                     # backing off
    assert j.enqueue([Change(S, "a", "put", repair=True)]) == 1
    assert kinds(j.claim(T, 10)) == [("a", "put")]


def test_rows_in_flight_below_a_directory_another_one_replaced_run_once_more(j):
    """`mv --exchange D1 D2` while D2/sub and D2/sub/deep were being sent: the move cannot
    be kept (work below D2), and the subtree re-send compares with `shipped`, which those
    rows have not reached yet. After their ack they must run again, the directory's as a
    tree op, so what they sent of the old D2 does not stay on the target
    (tests/e2e/test_exchange_in_flight.py)."""
    j.enqueue([Change(S, "D1/one", "put"), Change(S, "D2/sub", "mkdir"),
               Change(S, "D2/sub/deep", "put")])
    # both in flight at once: as a target without directories (S3) hands them out
    inflight = [op for op in j.claim(T, 10, directories=False) if op.path.startswith("D2/")]
    assert len(inflight) == 2
    assert j.enqueue_move(S, "D1", "D2", is_dir=True) == [T]   # busy: delete, mkdir, re-send
    j.ack([Outcome(op, "mkdir" if op.path == "D2/sub" else "put", size=6, mtime_ns=1,
                   is_dir=op.path == "D2/sub") for op in inflight])
    again = {op.path: op for op in j.claim(T, 10)}
    assert again["D2/sub"].tree            # its row was not removed by the ack: a tree op now
    assert "D2/sub/deep" not in again      # below it: waits for that tree op
    j.ack([Outcome(op, "delete") for op in again.values()])
    (deep,) = [op for op in j.claim(T, 10) if op.path == "D2/sub/deep"]
    assert deep.kind == "put" and not deep.tree   # runs once more: ships what is there now


def test_rows_in_flight_elsewhere_are_not_run_again(j):
    j.enqueue([Change(S, "D2x/f", "put"), Change(S, "other/f", "put")])
    inflight = j.claim(T, 10)
    j.enqueue([Change(S, "D2/f", "put")])
    assert j.enqueue_move(S, "D1", "D2", is_dir=True) == [T]
    ack(j, inflight)
    assert not {op.path for op in j.claim(T, 10)} & {"D2x/f", "other/f"}


def test_a_mkdir_over_a_queued_directory_move_leaves_it_a_move(j):
    """A comparison that saw the new name before the move reached the target proposes a
    mkdir there: the row stays the move (which makes that directory, with what lies below
    it), as an attr does; made a mkdir, it lost the files and its source end removed the
    old name whole, keeping them (tests/integration/test_dir_rotation_keeps_nothing.py)."""
    j.enqueue([Change(S, "d", "mkdir")])
    ack(j, j.claim(T, 10), "mkdir")
    assert j.enqueue_move(S, "d", "e", is_dir=True) == []
    j.enqueue([Change(S, "e", "mkdir")])
    (mv,) = j.claim(T, 10)
    assert (mv.path, mv.kind, mv.src) == ("e", "move", "d")


def test_a_mkdir_over_a_directory_move_in_flight_runs_again_as_a_mkdir(j):
    """The move at a worker still takes the old name along; run again as a move, it found
    the old name gone and re-sent the directory whole. A mkdir after it only syncs."""
    j.enqueue([Change(S, "d", "mkdir")])
    ack(j, j.claim(T, 10), "mkdir")
    assert j.enqueue_move(S, "d", "e", is_dir=True) == []
    (mv,) = j.claim(T, 10)
    j.enqueue([Change(S, "e", "mkdir")])
    ack(j, [mv], "move")
    (again,) = j.claim(T, 10)
    assert (again.path, again.kind) == ("e", "mkdir")


def test_a_delete_or_a_put_over_a_queued_directory_move_still_replaces_it(j):
    """What the move carried is gone at the source (`mv d e; rm -r e`, or a file at e):
    the row is what the change says, and d's source end keeps d's files."""
    for i, (kind, tree) in enumerate((("delete", True), ("put", False))):
        d, e = f"d{i}", f"e{i}"
        j.enqueue([Change(S, d, "mkdir")])
        ack(j, j.claim(T, 10), "mkdir")
        assert j.enqueue_move(S, d, e, is_dir=True) == []
        j.enqueue([Change(S, e, kind, tree=tree)])
        row = j.db.execute("SELECT kind, src FROM ops WHERE path = ?", (e.encode(),)).fetchone()
        assert row == (kind, None)
        for op in j.claim(T, 10):
            ack(j, [op], op.kind)
