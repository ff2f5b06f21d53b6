"""A rename the journal could not keep as a move (a delete of the old name and a put of the
new one: enqueue_move's fallback) keeps nothing where the target holds the file under the
new name, and keeps as before where it does not (mirrord.trash.keeper.lives_on).

The journal half: the fallback delete carries the new name and waits for its put; in a
chain a -> b -> c the source-end delete of a carries c. The keeper half, through the
Shipper on a memory target: the same version at both names -> nothing kept; another
version, nothing at the new name, or a plain delete -> kept as 'deleted'."""

from __future__ import annotations

import os

import pytest

from mirrord.journal import Change, Journal, Outcome
from mirrord.trash.model import DELETED, OVERWRITTEN, stamp_of, trash_rel
from tests.fakes import Clock
from tests.unit.test_trash_keeper import WHEN, Recording, op, seed, shipper

S, T = "up", "t"


@pytest.fixture
def j(tmp_path):
    """The journal on a real SQLite file with a fake clock (as tests/unit/test_journal.py)."""
    jr = Journal(tmp_path / "state" / "journal.db", {S: (T,)}, clock=Clock())
    yield jr
    jr.close()


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    return root


def claim_one(jr: Journal):
    ops = jr.claim(T, 10)
    assert len(ops) == 1, [(o.path, o.kind) for o in ops]
    return ops[0]


def test_the_fallback_delete_carries_the_new_name_and_waits_for_its_put(j):
    j.enqueue([Change(S, "a", "attr")])              # work waiting at the old name
    assert j.enqueue_move(S, "a", "b", is_dir=False) == [T]
    put = claim_one(j)                               # the delete of a waits for it
    assert (put.path, put.kind) == ("b", "put")
    j.ack([Outcome(put, "put", size=3, mtime_ns=5)])
    rm = claim_one(j)
    assert (rm.path, rm.kind, rm.src) == ("a", "delete", "b")


def test_a_chain_faster_than_its_first_move_points_every_delete_at_the_last_name(j):
    assert j.enqueue_move(S, "a", "b", is_dir=False) == []      # a move, not yet claimed
    assert j.enqueue_move(S, "b", "c", is_dir=False) == [T]     # b's row pending: fallback
    put = claim_one(j)
    assert (put.path, put.kind) == ("c", "put")
    j.ack([Outcome(put, "put", size=3, mtime_ns=5)])
    rm_b = claim_one(j)
    assert (rm_b.path, rm_b.kind, rm_b.src) == ("b", "delete", "c")
    j.ack([Outcome(rm_b, "delete")])
    rm_a = claim_one(j)
    assert (rm_a.path, rm_a.kind, rm_a.src) == ("a", "delete", "c")


def test_a_chain_whose_first_move_is_in_flight_points_the_first_delete_at_the_last_name(j):
    assert j.enqueue_move(S, "a", "b", is_dir=False) == []
    first = claim_one(j)                             # the move a -> b, in flight
    assert j.enqueue_move(S, "b", "c", is_dir=False) == []
    j.ack([Outcome(first, "delete")])                # b was gone at the source: not moved
    mv = claim_one(j)
    assert (mv.path, mv.kind, mv.src) == ("c", "move", "b")
    j.ack([Outcome(mv, "put", size=3, mtime_ns=5)])  # nothing shipped at b: sent whole
    rm_b = claim_one(j)
    j.ack([Outcome(rm_b, "delete")])
    rm_a = claim_one(j)
    assert (rm_a.path, rm_a.kind, rm_a.src) == ("a", "delete", "c")


def test_a_longer_chain_follows_the_bytes_to_the_end(j):
    j.enqueue([Change(S, "a", "attr")])
    assert j.enqueue_move(S, "a", "b", is_dir=False) == [T]
    assert j.enqueue_move(S, "b", "c", is_dir=False) == [T]
    assert j.enqueue_move(S, "c", "d", is_dir=False) == [T]
    order = []
    for _ in range(4):
        op_ = claim_one(j)
        order.append((op_.path, op_.kind, op_.src))
        j.ack([Outcome(op_, op_.kind)])
    assert order == [("d", "put", None), ("c", "delete", "d"), ("b", "delete", "d"),
                     ("a", "delete", "d")]


def test_a_new_change_at_the_old_name_drops_the_new_name(j):
    j.enqueue([Change(S, "a", "attr")])
    j.enqueue_move(S, "a", "b", is_dir=False)
    j.enqueue([Change(S, "a", "delete")])            # recorded again: a plain delete now
    put = claim_one(j)
    j.ack([Outcome(put, "put")])
    rm = claim_one(j)
    assert (rm.path, rm.kind, rm.src) == ("a", "delete", None)



@pytest.mark.parametrize("flag", ["proposed", "repair"])
@pytest.mark.parametrize("fallback", [False, True], ids=["move", "fallback"])
def test_a_comparisons_delete_keeps_the_new_name(j, flag, fallback):
    """A catch-up's delete (Change.proposed) or a reconcile's (repair) of the old name,
    recorded over its pending delete, keeps the name the file went to; a put of the new
    name proposed with it takes the move's row and the delete still waits for it."""
    if fallback:
        j.enqueue([Change(S, "a", "attr")])
    assert j.enqueue_move(S, "a", "b", is_dir=False) == ([T] if fallback else [])
    j.enqueue([Change(S, "a", "delete", **{flag: True})])
    j.enqueue([Change(S, "b", "put", **{flag: True})])
    first = claim_one(j)
    assert (first.path, first.kind) == ("b", "put")
    j.ack([Outcome(first, "put", size=3, mtime_ns=5)])
    rm = claim_one(j)
    assert (rm.path, rm.kind, rm.src) == ("a", "delete", "b")


def test_a_comparisons_delete_over_a_plain_delete_carries_nothing(j):
    j.enqueue([Change(S, "a", "delete")])
    j.enqueue([Change(S, "a", "delete", proposed=True)])
    rm = claim_one(j)
    assert (rm.path, rm.kind, rm.src) == ("a", "delete", None)

def _kept(t) -> dict[str, bytes]:
    return {k: v[0] for k, v in t.trash.items()}


def test_the_same_version_at_the_new_name_is_not_kept(src, tmp_path):
    t = Recording()
    seed(t, "a.jpg", b"photo", tmp_path)
    seed(t, "b.jpg", b"photo", tmp_path)             # the fallback's put ran first
    (out,) = shipper(t, src).run_ops(t, [op("a.jpg", "delete", src="b.jpg")])
    assert out.error is None and "a.jpg" not in t.files
    assert _kept(t) == {} and t.requests == []


def test_other_bytes_or_nothing_at_the_new_name_is_kept(src, tmp_path):
    t = Recording()
    seed(t, "a.jpg", b"photo", tmp_path)
    seed(t, "b.jpg", b"rewritten", tmp_path)         # the new name rewritten since
    seed(t, "c.jpg", b"photo", tmp_path)
    t.put("c.jpg", str(tmp_path / "seed"), size=5, mtime=2.0)   # same bytes, other mtime
    outs = shipper(t, src).run_ops(t, [op("a.jpg", "delete", src="b.jpg"),
                                       op("c.jpg", "delete", src="gone.jpg")])
    assert [o.error for o in outs] == [None, None]
    assert _kept(t) == {trash_rel(stamp_of(WHEN), DELETED, "a.jpg"): b"photo",
                        trash_rel(stamp_of(WHEN), DELETED, "c.jpg"): b"photo"}


def test_other_bytes_of_the_same_size_and_mtime_at_the_new_name_are_kept(src, tmp_path):
    """No ETag on the target (local, rsync): size and mtime match, the bytes do not (the
    new name rewritten with `touch -r` before its put ran): the old name is kept."""
    t = Recording()
    _put(t, tmp_path, "a.jpg", b"photo A", mtime=1.0)
    _put(t, tmp_path, "b.jpg", b"photo B", mtime=1.0)
    (out,) = shipper(t, src).run_ops(t, [op("a.jpg", "delete", src="b.jpg")])
    assert out.error is None and "a.jpg" not in t.files
    assert _kept(t) == {trash_rel(stamp_of(WHEN), DELETED, "a.jpg"): b"photo A"}


def test_an_exchange_of_the_same_size_and_mtime_drops_only_what_is_held(src, tmp_path):
    """Two puts over each other where the other end got other bytes of the same size and
    mtime: the version kept is the only copy of its bytes, and stays."""
    t = Recording()
    _put(t, tmp_path, "a.jpg", b"photo a", mtime=1.0)
    _put(t, tmp_path, "b.jpg", b"photo b", mtime=1.0)
    for name, data in (("a.jpg", b"photo x"), ("b.jpg", b"photo a")):
        (src / name).write_bytes(data)
        os.utime(src / name, (1.0, 1.0))
    ship = shipper(t, src)
    ship.run_ops(t, [op("b.jpg", "put", src="a.jpg")])
    ship.run_ops(t, [op("a.jpg", "put", src="b.jpg")])
    assert _kept(t) == {trash_rel(stamp_of(WHEN), OVERWRITTEN, "b.jpg"): b"photo b"}


# ------------------------------------------------------------------ exchanges (trash.swaps)


def test_an_exchange_seen_as_a_move_and_two_writes_names_the_other_end(j):
    """fanotify: the first FAN_RENAME is a move, the second makes both names writes."""
    j.enqueue_move(S, "a", "b", is_dir=False)
    j.enqueue([Change(S, "a", "put"), Change(S, "b", "put")])
    first = claim_one(j)                             # a's put waits for b's row
    assert (first.path, first.kind, first.src) == ("b", "put", None)
    j.ack([Outcome(first, "put")])
    second = claim_one(j)
    assert (second.path, second.kind, second.src) == ("a", "put", "b")


def test_an_exchange_seen_as_two_moves_names_the_other_end(j):
    """inotify: a -> b, then b -> a, which cannot be a move (b's row is pending)."""
    j.enqueue_move(S, "a", "b", is_dir=False)
    assert j.enqueue_move(S, "b", "a", is_dir=False) == [T]
    first = claim_one(j)
    assert (first.path, first.kind, first.src) == ("b", "delete", "a")   # sent as b stands
    j.ack([Outcome(first, "put")])
    second = claim_one(j)
    assert (second.path, second.kind, second.src) == ("a", "put", "b")


def test_a_directory_exchanged_with_a_file_directory_first_is_cleared_and_resent(j):
    """inotify reads renameat2(D, F, RENAME_EXCHANGE) as D -> F (a directory move), then
    F -> D (a file, which cannot be a move: F's row is pending). The file's fallback
    delete of F used to replace the directory's move with a plain delete: the target got
    a bare mkdir at F, the directory's contents never sent (a breaker). Now it is a tree
    delete, whose outcome on the directory the source holds asks for F to be re-sent."""
    j.enqueue_move(S, "D", "F", is_dir=True)
    assert j.enqueue_move(S, "F", "D", is_dir=False) == [T]
    first = claim_one(j)
    assert (first.path, first.kind, first.tree, first.is_dir) == ("F", "delete", True, True)
    j.ack([Outcome(first, "mkdir", is_dir=True)])
    second = claim_one(j)
    assert (second.path, second.kind, second.tree) == ("D", "put", True)


def test_a_file_exchanged_with_a_directory_file_first_stays_a_plain_fallback(j):
    """The other order (F -> D recorded as a file move first) leaves the directory's own
    fallback to re-send it (the caller walks D): the file's rows stay as they were."""
    j.enqueue_move(S, "F", "D", is_dir=False)
    assert j.enqueue_move(S, "D", "F", is_dir=True) == [T]
    first = claim_one(j)                    # D cleared as a tree, sent as the source holds it
    assert (first.path, first.kind, first.tree, first.src) == ("D", "delete", True, "F")
    j.ack([Outcome(first, "put")])
    second = claim_one(j)
    assert (second.path, second.kind) == ("F", "mkdir")


def _put(t, tmp_path, path: str, data: bytes, *, mtime: float) -> None:
    f = tmp_path / "put"
    f.write_bytes(data)
    t.put(path, str(f), size=len(data), mtime=mtime)


def test_an_exchange_keeps_then_drops_what_both_names_still_hold(src, tmp_path):
    t = Recording()
    _put(t, tmp_path, "a.jpg", b"photo a", mtime=1.0)
    _put(t, tmp_path, "b.jpg", b"photo b, longer", mtime=2.0)
    (src / "a.jpg").write_bytes(b"photo b, longer")
    os.utime(src / "a.jpg", (2.0, 2.0))
    (src / "b.jpg").write_bytes(b"photo a")
    os.utime(src / "b.jpg", (1.0, 1.0))
    ship = shipper(t, src)
    (out_b,) = ship.run_ops(t, [op("b.jpg", "put", src="a.jpg")])    # b first, kept
    assert out_b.error is None
    assert _kept(t) == {trash_rel(stamp_of(WHEN), OVERWRITTEN, "b.jpg"): b"photo b, longer"}
    (out_a,) = ship.run_ops(t, [op("a.jpg", "put", src="b.jpg")])
    assert out_a.error is None
    assert t.files["a.jpg"][0] == b"photo b, longer" and t.files["b.jpg"][0] == b"photo a"
    assert _kept(t) == {}                           # both versions are on the target


def test_an_overwrite_after_the_exchange_stays_kept(src, tmp_path):
    t = Recording()
    _put(t, tmp_path, "a.jpg", b"photo a", mtime=1.0)
    _put(t, tmp_path, "b.jpg", b"photo b, longer", mtime=2.0)
    (src / "a.jpg").write_bytes(b"a rewrite, not b")    # the other end's bytes never came
    (src / "b.jpg").write_bytes(b"photo a")
    os.utime(src / "b.jpg", (1.0, 1.0))
    ship = shipper(t, src)
    ship.run_ops(t, [op("b.jpg", "put", src="a.jpg")])
    ship.run_ops(t, [op("a.jpg", "put", src="b.jpg")])
    assert _kept(t) == {trash_rel(stamp_of(WHEN), OVERWRITTEN, "b.jpg"): b"photo b, longer"}


def test_a_put_that_cannot_succeed_lets_the_fallback_delete_go(j):
    """The fallback delete waits for the put of the new name only for its keep's sake: a
    put that fails permanently (a name the target cannot hold) must not keep the old name
    on the target for good; a retryable failure (the target down) keeps it waiting."""
    j.enqueue([Change(S, "a", "attr")])              # work waiting at the old name
    assert j.enqueue_move(S, "a", "b", is_dir=False) == [T]
    put = claim_one(j)
    assert (put.path, put.kind) == ("b", "put")
    j.ack([Outcome(put, error="target down")])
    assert j.claim(T, 10) == []                      # retryable: the delete still waits
    j.retry_now(T)
    put = claim_one(j)
    assert (put.path, put.kind) == ("b", "put")
    j.ack([Outcome(put, error="cannot hold that name", permanent=True)])
    rm = claim_one(j)                                # the put waits out its backoff
    assert (rm.path, rm.kind, rm.src) == ("a", "delete", "b")


# A comparison (the start pass, a scheduled reconcile, a catch-up) that reads both names
# mid-exchange records a put of each, before or after the watcher's events. Its put over
# the move's row made a plain put of it, and the live write after it cleared the hint the
# put of `a` had taken from its pending delete: both names were kept as 'overwritten'
# (tests/e2e/test_rename_fallback_keeps_nothing.py, the versioned bucket beside a local
# directory, in CI). Each order, each flag, fanotify's and inotify's shapes:
@pytest.mark.parametrize("flag", ["proposed", "repair"])
@pytest.mark.parametrize("order", ["compared-first", "compared-between", "compared-last"])
def test_a_comparison_during_an_exchange_keeps_the_other_end(j, flag, order):
    compared = [Change(S, "a", "put", **{flag: True}), Change(S, "b", "put", **{flag: True})]
    if order == "compared-first":    # it read both names after the exchange, before the events
        j.enqueue(compared)
    j.enqueue_move(S, "a", "b", is_dir=False)
    if order == "compared-between":
        j.enqueue(compared)
    j.enqueue([Change(S, "a", "put"), Change(S, "b", "put")])
    if order == "compared-last":
        j.enqueue(compared)
    first = claim_one(j)
    assert (first.path, first.kind) == ("b", "put")
    j.ack([Outcome(first, "put")])
    second = claim_one(j)   # compared-first: a fallback (work was pending), the same end
    assert (second.path, second.kind, second.src) == ("a", "put", "b")


def test_inotifys_exchange_with_a_comparison_between_keeps_the_other_end(j):
    j.enqueue_move(S, "a", "b", is_dir=False)
    j.enqueue([Change(S, "a", "put", proposed=True), Change(S, "b", "put", proposed=True)])
    assert j.enqueue_move(S, "b", "a", is_dir=False) == [T]
    j.enqueue([Change(S, "a", "put")])               # and a write after it all
    first = claim_one(j)
    assert (first.path, first.kind, first.src) == ("b", "delete", "a")
    j.ack([Outcome(first, "put")])
    second = claim_one(j)
    assert (second.path, second.kind, second.src) == ("a", "put", "b")


def test_writes_after_an_exchange_keep_the_other_end_until_it_is_sent(j):
    j.enqueue_move(S, "a", "b", is_dir=False)
    j.enqueue([Change(S, "a", "put"), Change(S, "b", "put")])
    j.enqueue([Change(S, "a", "put"), Change(S, "a", "put")])   # written twice more
    j.ack([Outcome(claim_one(j), "put")])
    second = claim_one(j)
    assert (second.path, second.kind, second.src) == ("a", "put", "b")


@pytest.mark.parametrize("state", ["in-flight", "maybe-stored"])
def test_a_put_over_one_sent_or_maybe_stored_carries_nothing(j, state):
    """Once the hinted put was claimed (the target may hold its bytes now: it settles its
    own exchange) or may be stored (ops.landed), a put over it overwrites those new
    bytes, which live at no other name: it carries no hint."""
    j.enqueue_move(S, "a", "b", is_dir=False)
    j.enqueue([Change(S, "a", "put"), Change(S, "b", "put")])
    j.ack([Outcome(claim_one(j), "put")])
    hinted = claim_one(j)
    assert (hinted.path, hinted.src) == ("a", "b")
    if state == "maybe-stored":
        j.ack([Outcome(hinted, error="answer lost", landed=True)])
        j.retry_now(T)
    j.enqueue([Change(S, "a", "put")])
    if state == "in-flight":
        j.ack([Outcome(hinted, "put")])
    again = claim_one(j)
    assert (again.path, again.kind, again.src) == ("a", "put", None)


def test_a_directory_move_in_flight_made_a_mkdir_hands_its_new_name_on(j):
    """`mv d1 x` claimed, then a catch-up's mkdir of x (read after the rename, before the
    move's ack) takes x's row: d1's tree removal, which found x through that row, carries
    x itself, and a rename of x on (`mv x d2`) carries it to d2. (A reconcile's repair
    is not recorded over an op in flight at all: Journal.enqueue.)"""
    assert j.enqueue_move(S, "d1", "x", is_dir=True) == []
    move = claim_one(j)
    assert (move.path, move.kind, move.src) == ("x", "move", "d1")
    j.enqueue([Change(S, "x", "mkdir", proposed=True)])
    row = j.db.execute("SELECT kind, tree, src FROM ops WHERE path = ?", (b"d1",)).fetchone()
    assert (row[0], row[1], bytes(row[2])) == ("delete", 1, b"x")
    assert j.enqueue_move(S, "x", "d2", is_dir=True) == [T]   # x's row pending: a fallback
    row = j.db.execute("SELECT src FROM ops WHERE path = ?", (b"d1",)).fetchone()
    assert bytes(row[0]) == b"d2"


def test_a_directory_move_not_claimed_stays_the_move_under_a_mkdir(j):
    assert j.enqueue_move(S, "d1", "x", is_dir=True) == []
    j.enqueue([Change(S, "x", "mkdir", proposed=True)])
    row = j.db.execute("SELECT kind, src FROM ops WHERE path = ?", (b"x",)).fetchone()
    assert (row[0], bytes(row[1])) == ("move", b"d1")
    row = j.db.execute("SELECT src FROM ops WHERE path = ?", (b"d1",)).fetchone()
    assert row[0] is None                            # found through the move, as before
