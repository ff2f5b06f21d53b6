"""The journal on a real SQLite file: coalescing, in-flight changes, moves, barriers,
backoff, the `shipped` record, and refusing damaged or newer databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mirrord import journal as journal_mod
from mirrord.errors import JournalError
from tests.fakes import Clock
from mirrord.journal import (PERMANENT_RETRY, RETRY_MAX, Change, Journal, Outcome,
                             iter_shipped, ship_key)

S, T = "up", "t"


@pytest.fixture
def clock() -> Clock:
    return Clock()


GONE = "0:0"   # a claimer id no process has (pid 0): a claim of a process that is gone


@pytest.fixture
def j(tmp_path: Path, clock: Clock) -> Journal:
    jr = Journal(tmp_path / "state" / "journal.db", {S: (T,)}, clock=clock)
    yield jr
    jr.close()


def put(path: str, **kw) -> Change:
    return Change(S, path, "put", **kw)


def rows(j: Journal) -> dict[str, tuple]:
    """path -> (kind, src, is_dir, tree, wait_for path or None, claimed)."""
    ids = {oid: bytes(p).decode() for oid, p in j.db.execute("SELECT id, path FROM ops")}
    out = {}
    for oid, path, kind, src, is_dir, tree, wait, claimed in j.db.execute(
            "SELECT id, path, kind, src, is_dir, tree, wait_for, claimed FROM ops"):
        out[bytes(path).decode()] = (kind, bytes(src).decode() if src is not None else None,
                                     bool(is_dir), bool(tree), ids.get(wait), bool(claimed))
    return out


def shipped(j: Journal) -> dict[str, tuple[int, int]]:
    return {k.decode(): (size, m) for k, size, m, _tok, _mode in iter_shipped(j.db, T, S)}


def done(op, kind: str, *, size: int = 0, mtime_ns: int = 0, is_dir: bool = False) -> Outcome:
    return Outcome(op, kind, size=size, mtime_ns=mtime_ns, is_dir=is_dir)


def claim_all(j: Journal, clock: Clock) -> dict[str, object]:
    return {op.path: op for op in j.claim(T, 100, now=clock.now + 10_000)}


# ------------------------------------------------------------------ coalescing


def test_several_changes_to_one_path_coalesce_to_the_latest(j):
    j.enqueue([put("a"), Change(S, "a", "delete"), put("a", size=5)])
    j.enqueue([Change(S, "a", "delete")])
    assert rows(j) == {"a": ("delete", None, False, False, None, False)}
    (op,) = j.claim(T, 10)
    assert (op.path, op.kind) == ("a", "delete")


def test_changes_are_routed_to_the_source_targets_only(tmp_path, clock):
    jr = Journal(tmp_path / "j.db", {S: ("t", "u"), "other": ("v",)}, clock=clock)
    assert jr.enqueue([put("a")]) == 2
    assert jr.enqueue([put("b", targets=("u", "v"))]) == 1   # v is not a target of S
    assert [op.path for op in jr.claim("t", 10)] == ["a"]
    assert sorted(op.path for op in jr.claim("u", 10)) == ["a", "b"]
    assert jr.claim("v", 10) == []
    jr.close()


def test_a_claim_carries_the_rows_oldest_and_newest_change_times(j, clock, tmp_path):
    """Op.first_seen and Op.event_time: the oldest and newest change the row holds, which
    the put's SyncItem carries to mirrord.trash.swaps (first_when, when); a row made again
    after its ack starts over."""
    from mirrord.config.model import SourceConfig
    from mirrord.observe import Observed
    from mirrord.ship_rules import sync_item
    j.enqueue_move(S, "a", "b", is_dir=False)   # b: a move, a: its source end at 1000
    clock.now += 1.5
    j.enqueue([put("a")])                       # a put over it (an exchange's) at 1001.5
    (move,) = j.claim(T, 10)                    # the put waits for the move
    j.ack([Outcome(move, shipped_kind="move")])
    (op,) = j.claim(T, 10)
    assert (op.first_seen, op.event_time) == (1000.0, 1001.5)
    item = sync_item(op, SourceConfig(S, tmp_path, (T,)), Observed("absent"))
    assert (item.first_when, item.when) == (1000.0, 1001.5)
    j.ack([Outcome(op, shipped_kind="delete")])
    clock.now += 2
    j.enqueue([put("a")])
    (op,) = j.claim(T, 10)
    assert (op.first_seen, op.event_time) == (1003.5, 1003.5)


def test_a_claimed_row_is_not_claimed_twice(j):
    j.enqueue([put("a"), put("b")])
    first = j.claim(T, 1)
    second = j.claim(T, 10)
    assert [op.path for op in first] == ["a"]
    assert [op.path for op in second] == ["b"]
    assert j.claim(T, 10) == []


def test_delay_holds_a_change_back(j, clock):
    j.enqueue([put("a", delay=5.0)])
    assert j.claim(T, 10) == []
    clock.now += 5.0
    assert [op.path for op in j.claim(T, 10)] == ["a"]


# ------------------------------------------------------------------ in flight


def test_a_change_while_claimed_survives_the_ack(j):
    j.enqueue([put("a", size=1)])
    (op,) = j.claim(T, 10)
    j.enqueue([Change(S, "a", "delete")])        # arrives while the worker runs
    j.ack([done(op, "put", size=1, mtime_ns=7)])
    assert rows(j) == {"a": ("delete", None, False, False, None, False)}
    (again,) = j.claim(T, 10)
    assert again.kind == "delete" and again.seq > op.seq
    j.ack([done(again, "delete")])
    assert rows(j) == {} and shipped(j) == {}


def test_ack_clears_tree_only_when_no_newer_tree_request(j):
    j.enqueue([Change(S, "d", "delete", tree=True)])
    (op,) = j.claim(T, 10)
    j.enqueue([Change(S, "d", "mkdir")])          # not a tree request: tree is done by the ack
    j.ack([done(op, "delete")])
    assert rows(j)["d"][:4] == ("mkdir", None, True, False)

    (op2,) = j.claim(T, 10)
    assert not op2.tree
    j.enqueue([Change(S, "d", "delete", tree=True)])   # a newer tree request while in flight
    j.ack([done(op2, "mkdir", is_dir=True)])
    assert rows(j)["d"][:4] == ("delete", None, True, True)


def test_failure_of_an_outdated_claim_does_not_back_off_the_newer_change(j, clock):
    j.enqueue([put("a")])
    (op,) = j.claim(T, 10)
    j.enqueue([put("a", size=3)])
    j.ack([Outcome(op, error="boom")])
    (again,) = j.claim(T, 10)                    # ready at once: the new change is untried
    assert again.attempts == 0


def test_release_claims_makes_in_flight_rows_claimable(tmp_path, clock):
    gone = Journal(tmp_path / "j.db", {S: (T,)}, clock=clock, claimer=GONE)
    gone.enqueue([put("a"), put("b")])
    assert len(gone.claim(T, 10)) == 2
    gone.close()
    j = Journal(tmp_path / "j.db", {S: (T,)}, clock=clock, reset_claims=False)
    assert j.claim(T, 10) == []
    assert j.release_claims() == 2
    assert sorted(op.path for op in j.claim(T, 10)) == ["a", "b"]
    assert j.release_claims() == 0     # now ours, and we run: never released
    j.close()


def test_claims_are_reset_when_the_journal_is_reopened(tmp_path, clock):
    path = tmp_path / "j.db"
    jr = Journal(path, {S: (T,)}, clock=clock, claimer=GONE)
    jr.enqueue([put("a")])
    assert len(jr.claim(T, 10)) == 1
    jr.close()   # as after a crash: the claim was never acked
    jr = Journal(path, {S: (T,)}, clock=clock)
    assert [op.path for op in jr.claim(T, 10)] == ["a"]
    jr.close()


# ------------------------------------------------------------------ moves


def test_move_of_fresh_paths_is_a_move_row_and_a_delete_waiting_for_it(j):
    assert j.enqueue_move(S, "a", "b", is_dir=False) == []
    assert rows(j) == {"b": ("move", "a", False, False, None, False),
                       "a": ("delete", "b", False, False, "b", False)}   # carries b: keeps nothing if b is sent whole
    (op,) = j.claim(T, 10)                         # the delete waits
    assert (op.path, op.kind, op.src) == ("b", "move", "a")
    j.ack([done(op, "move")])
    (op2,) = j.claim(T, 10)
    assert (op2.path, op2.kind) == ("a", "delete")


def test_move_carries_what_was_shipped_for_its_source(j):
    j.enqueue([put("a")])
    (op,) = j.claim(T, 10)
    j.ack([done(op, "put", size=4, mtime_ns=99)])
    j.enqueue_move(S, "a", "b", is_dir=False)
    (mv,) = j.claim(T, 10)
    assert mv.src_shipped == (4, 99, None)   # mode not reported: not known


@pytest.mark.parametrize("pending", ["a", "b"])
def test_move_with_pending_work_on_either_side_falls_back(j, pending):
    j.enqueue([put(pending)])
    assert j.enqueue_move(S, "a", "b", is_dir=False) == [T]
    # the delete carries the new name and waits for its put (keeper.lives_on)
    assert rows(j) == {"a": ("delete", "b", False, False, "b", False),
                       "b": ("put", None, False, False, None, False)}


def test_directory_move_with_pending_work_below_falls_back(j):
    j.enqueue([put("d/x")])
    assert j.enqueue_move(S, "d", "e", is_dir=True) == [T]
    r = rows(j)
    # the tree removal names where its bytes went (mirrord.trash.moved_trees)
    assert r["d"][:4] == ("delete", "e", True, True)
    assert r["e"][:4] == ("mkdir", None, True, False)


def test_rows_below_a_moved_directory_wait_for_the_move(j):
    j.enqueue_move(S, "d", "e", is_dir=True)
    j.enqueue([put("e/x"), put("d/y"), put("f")])
    r = rows(j)
    assert r["e/x"][4] == "e"
    assert r["d/y"][4] == "d"     # the delete of d (itself waiting for the move)
    assert r["f"][4] is None
    assert sorted(claim_all(j, Clock())) == ["e", "f"]


def test_rows_below_a_deleted_tree_wait_for_it(j):
    j.enqueue([Change(S, "d", "delete", tree=True), put("d/x")])
    assert rows(j)["d/x"][4] == "d"
    (op,) = j.claim(T, 10)
    assert op.path == "d" and op.tree
    j.ack([done(op, "delete")])
    assert [op.path for op in j.claim(T, 10)] == ["d/x"]


def test_a_deleted_tree_recreated_still_holds_back_what_is_written_below(j):
    # rm -r d; mkdir d; echo > d/x -- the row for d still removes the old tree first,
    # so d/x must not be shipped before it (it would be deleted by it).
    j.enqueue([Change(S, "d", "delete", tree=True)])
    j.enqueue([Change(S, "d", "mkdir")])
    j.enqueue([put("d/x")])
    assert rows(j)["d"][3] is True
    assert rows(j)["d/x"][4] == "d"
    assert [op.path for op in j.claim(T, 10)] == ["d"]


def test_a_tree_delete_in_flight_still_holds_back_writes_below_after_mkdir(j):
    j.enqueue([Change(S, "d", "delete", tree=True)])
    (op,) = j.claim(T, 10)
    j.enqueue([Change(S, "d", "mkdir"), put("d/x")])
    assert j.claim(T, 10) == []            # d/x waits for the tree delete in flight
    j.ack([done(op, "delete")])
    (again,) = j.claim(T, 10)              # d again (mkdir, no tree any more)
    assert again.path == "d" and not again.tree
    j.ack([done(again, "mkdir", is_dir=True)])
    assert [o.path for o in j.claim(T, 10)] == ["d/x"]


def test_barriers_survive_a_restart(tmp_path, clock):
    path = tmp_path / "j.db"
    jr = Journal(path, {S: (T,)}, clock=clock)
    jr.enqueue_move(S, "d", "e", is_dir=True)
    jr.close()
    jr = Journal(path, {S: (T,)}, clock=clock)
    jr.enqueue([put("e/x")])
    assert rows(jr)["e/x"][4] == "e"
    jr.close()


def _assert_no_cycles(j: Journal) -> None:
    waits = dict(j.db.execute("SELECT id, wait_for FROM ops"))
    for start in waits:
        seen, cur = set(), start
        while cur is not None:
            assert cur not in seen, f"wait_for cycle through row {cur}: {rows(j)}"
            seen.add(cur)
            cur = waits.get(cur)


@pytest.mark.parametrize("is_dir", [False, True])
def test_swapping_back_and_forth_never_makes_a_wait_cycle(j, is_dir):
    j.enqueue_move(S, "a", "b", is_dir=is_dir)
    j.enqueue_move(S, "b", "a", is_dir=is_dir)
    _assert_no_cycles(j)
    j.enqueue_move(S, "a", "c", is_dir=is_dir)
    j.enqueue_move(S, "c", "b", is_dir=is_dir)
    _assert_no_cycles(j)
    assert j.claim(T, 10), "something must be ready"


def test_nested_directory_moves_never_make_a_wait_cycle(j):
    j.enqueue_move(S, "d", "e", is_dir=True)
    j.enqueue([put("e/x"), Change(S, "d", "mkdir")])
    j.enqueue_move(S, "e/x", "d/x", is_dir=False)
    j.enqueue_move(S, "e", "d/e", is_dir=True)
    _assert_no_cycles(j)
    # draining everything in order must be possible
    for _ in range(20):
        ops = j.claim(T, 100)
        if not ops:
            break
        j.ack([done(op, "delete") for op in ops])
    assert rows(j) == {}


# ------------------------------------------------------------------ failures


def test_retryable_failures_back_off_growing_up_to_a_cap(j, clock):
    j.enqueue([put("a")])
    delays = []
    for _ in range(12):
        (op,) = j.claim(T, 1, now=clock.now + 10_000)
        j.ack([Outcome(op, error="RetryableError: down")])
        next_try = j.db.execute("SELECT next_try FROM ops").fetchone()[0]
        delays.append(next_try - clock.now)
    assert delays[0] < 1.0
    assert delays[4] > delays[0] * 4
    assert max(delays) <= RETRY_MAX * 1.25
    assert delays[-1] >= RETRY_MAX * 0.75
    attempts, err = j.db.execute("SELECT attempts, last_error FROM ops").fetchone()
    assert attempts == 12 and "down" in err


def test_a_permanent_failure_waits_long(j, clock):
    j.enqueue([put("a")])
    (op,) = j.claim(T, 1)
    j.ack([Outcome(op, error="PermanentError: bad name", permanent=True)])
    assert j.claim(T, 10, now=clock.now + PERMANENT_RETRY * 0.99) == []
    assert len(j.claim(T, 10, now=clock.now + PERMANENT_RETRY * 1.01)) == 1


def test_retry_now_takes_a_target_s_failed_rows_out_of_their_backoff(j, clock):
    """A target that is back (Journal.retry_now): its failed rows run at once, whatever
    their backoff; rows in flight, waiting for a writer or of another target are left."""
    j.routes[S] = (T, "other")
    j.enqueue([put("perm"), put("retry"), put("busy"), put("flying"), put("fresh")])
    ops = {op.path: op for op in j.claim(T, 10)}
    j.ack([Outcome(ops["perm"], error="PermanentError: EPERM", permanent=True),
           Outcome(ops["retry"], error="RetryableError: down"),
           Outcome(ops["busy"], error="still open", busy=True),
           done(ops["fresh"], "put")])
    j.ack([Outcome(op, error="down") for op in j.claim("other", 10)])
    assert j.claim(T, 10) == []
    assert j.retry_now(T) == 2
    assert sorted(op.path for op in j.claim(T, 10)) == ["perm", "retry"]
    assert j.claim("other", 10) == []   # another target's backoff is its own
    j.release_claims()


@pytest.mark.parametrize("directory,is_dir,ready", [
    ("d", True, ["d/e/deep", "d/perm", "d/retry"]),     # every level below; not dd/
    ("d/e", True, ["d/e/deep"]),
    ("", True, ["d/e/deep", "d/perm", "d/retry", "dd/perm", "top"]),   # the source root
    ("d", False, []),          # an attribute change of a file (or not known to be a dir)
])
def test_a_directorys_attribute_change_retries_the_failed_rows_below_it_at_once(
        j, clock, directory, is_dir, ready):
    """A chmod, chown or ACL change of a directory (Change.is_dir): the rows below it that
    failed (a file below a directory the daemon could not search: EACCES, refused for good,
    600 s) run at once, on every target. Before, they waited out the 600 s after the
    directory was readable again (a review, helper-153). Rows beside it, a row waiting for
    a writer and a row in flight are left as they are."""
    j.routes[S] = (T, "other")
    j.enqueue([put(p) for p in ("d/perm", "d/retry", "d/e/deep", "d/busy", "d/flying",
                                "dd/perm", "top")])
    for target in (T, "other"):
        ops = {op.path: op for op in j.claim(target, 100, now=clock.now + 10_000)}
        j.ack([Outcome(ops[p], error="unreadable at the source: Permission denied",
                       permanent=True) for p in ("d/perm", "d/e/deep", "dd/perm", "top")]
              + [Outcome(ops["d/retry"], error="RetryableError: down"),
                 Outcome(ops["d/busy"], error="still open", busy=True)])   # d/flying: in flight
    assert j.claim(T, 100) == [] and j.claim("other", 100) == []
    j.enqueue([Change(S, directory, "attr", is_dir=is_dir)])
    if not directory:   # the source root's mode is never mirrored: no row for it
        assert j.db.execute("SELECT 1 FROM ops WHERE path = ?", (b"",)).fetchone() is None
    for target in (T, "other"):
        got = sorted(op.path for op in j.claim(target, 100) if op.path != directory)
        assert got == ready, (target, got)
    j.release_claims()


def test_a_row_in_flight_when_its_directory_changes_is_retried_at_once_if_it_fails(j, clock):
    """A worker met the locked directory before the chmod back and its failure is recorded
    after it (a review, helper-154: it then waited the 600 s, nothing left to name it):
    that failure runs again at once; a second failure backs off as usual. One that
    succeeded is done, not sent again, and a directory beside it marks nothing."""
    j.enqueue([put("p/fails"), put("p/ships"), put("q/fails")])
    ops = {op.path: op for op in j.claim(T, 10)}
    j.enqueue([Change(S, "p", "attr", is_dir=True)])
    j.ack([Outcome(ops["p/fails"], error="unreadable at the source: Permission denied",
                   permanent=True), done(ops["p/ships"], "put"),
           Outcome(ops["q/fails"], error="unreadable at the source: Permission denied",
                   permanent=True)])
    (own,) = j.claim(T, 10)   # p's own attr op first: nothing below it runs beside it
    assert own.path == "p"
    j.ack([done(own, "mkdir", is_dir=True)])
    again = j.claim(T, 10)
    assert [op.path for op in again] == ["p/fails"]
    j.ack([Outcome(again[0], error="unreadable at the source: Permission denied",
                   permanent=True)])
    assert j.claim(T, 10) == []   # its backoff now


def test_a_tree_removal_done_runs_the_failed_rows_below_it_at_once(j, clock):
    """Rows below d failed (refused for good, retried, busy); d is removed: once the tree
    removal is done they run at once, state-based, not after their backoff (a change
    refused for good left the target degraded 600 s after its directory was gone: `mv
    src/.mirrord src/m`). Rows beside d, and a removal not done yet, leave backoffs as
    they are."""
    j.enqueue([put("d/perm"), put("d/sub/retry"), put("d/busy"), put("dd/perm"),
               put("e/perm")])
    ops = claim_all(j, clock)
    j.ack([Outcome(ops["d/perm"], error="PermanentError: own area", permanent=True),
           Outcome(ops["d/sub/retry"], error="RetryableError: down"),
           Outcome(ops["d/busy"], error="still open", busy=True),
           Outcome(ops["dd/perm"], error="PermanentError: x", permanent=True),
           Outcome(ops["e/perm"], error="PermanentError: x", permanent=True)])
    j.enqueue([Change(S, "d", "delete", tree=True)])
    (removal,) = j.claim(T, 10)
    assert removal.path == "d" and j.claim(T, 10) == []     # the rest wait their backoff
    j.ack([done(removal, "skip")])
    assert sorted(op.path for op in j.claim(T, 10)) == ["d/busy", "d/perm", "d/sub/retry"]
    j.release_claims()


def test_a_new_change_retries_a_failed_path_at_once(j, clock):
    j.enqueue([put("a")])
    (op,) = j.claim(T, 1)
    j.ack([Outcome(op, error="x", permanent=True)])
    j.enqueue([put("a")])
    assert len(j.claim(T, 10)) == 1


def test_backlog_counts_pending_and_failures(j, clock):
    j.enqueue([put("a", size=10), put("b", size=5)])
    ops = j.claim(T, 10)
    j.ack([done(ops[0], "put"), Outcome(ops[1], error="down")])
    b = j.backlog()[T]
    assert b.pending == 1 and b.pending_bytes == 5 and b.failing == 1
    assert b.extra["shipped"] == 1 and b.extra["failed"] == 1
    assert "down" in b.last_error


# ------------------------------------------------------------------ shipped record


def _ship(j: Journal, clock: Clock, changes, outcomes_by_path) -> None:
    """Queue `changes` and ack each row as `outcomes_by_path` says, claim after claim (a row
    below a directory's row goes once that one is acked)."""
    j.enqueue(changes)
    while ops := claim_all(j, clock):
        j.ack([outcomes_by_path[p](op) for p, op in ops.items()])


def test_shipped_follows_puts_deletes_and_mkdirs(j, clock):
    _ship(j, clock, [Change(S, "d", "mkdir"), put("d/x"), put("y")], {
        "d": lambda op: done(op, "mkdir", mtime_ns=1, is_dir=True),
        "d/x": lambda op: done(op, "put", size=3, mtime_ns=2),
        "y": lambda op: done(op, "put", size=4, mtime_ns=3)})
    assert shipped(j) == {"d/": (0, 1), "d/x": (3, 2), "y": (4, 3)}
    _ship(j, clock, [Change(S, "y", "delete")], {"y": lambda op: done(op, "delete")})
    assert shipped(j) == {"d/": (0, 1), "d/x": (3, 2)}
    _ship(j, clock, [Change(S, "d", "delete", tree=True)], {"d": lambda op: done(op, "delete")})
    assert shipped(j) == {}


def test_an_unfinished_shipped_listing_closes_quietly_after_its_connection(j, clock, tmp_path):
    """A catch-up or a reconcile pass stopped early closes its read-only connection with
    a listing unfinished; the generator's close then closed the cursor on a closed
    connection and raised, printed as "Exception ignored ... Cannot operate on a closed
    database" when a daemon stopped right after an unmount (a breaker's log)."""
    _ship(j, clock, [put("a"), put("b")], {
        "a": lambda op: done(op, "put", size=1, mtime_ns=1),
        "b": lambda op: done(op, "put", size=2, mtime_ns=2)})
    conn = journal_mod.connect(tmp_path / "state" / "journal.db", readonly=True)
    listing = iter_shipped(conn, T, S)
    assert next(listing)[0] == b"a"
    conn.close()
    listing.close()                       # raised ProgrammingError before


def test_shipped_file_replaced_by_directory_and_back(j, clock):
    _ship(j, clock, [put("p")], {"p": lambda op: done(op, "put", size=1, mtime_ns=1)})
    _ship(j, clock, [Change(S, "p", "mkdir")], {"p": lambda op: done(op, "mkdir", is_dir=True)})
    assert shipped(j) == {"p/": (0, 0)}
    _ship(j, clock, [put("p/q")], {"p/q": lambda op: done(op, "put", size=2, mtime_ns=2)})
    _ship(j, clock, [Change(S, "p", "delete", tree=True)],
          {"p": lambda op: done(op, "put", size=5, mtime_ns=5)})   # a file stands there now
    assert shipped(j) == {"p": (5, 5)}


def test_shipped_follows_a_file_move(j, clock):
    _ship(j, clock, [put("a")], {"a": lambda op: done(op, "put", size=3, mtime_ns=9)})
    j.enqueue_move(S, "a", "b", is_dir=False)
    (mv,) = j.claim(T, 10)
    j.ack([done(mv, "move", size=3, mtime_ns=9)])
    assert shipped(j) == {"b": (3, 9)}
    (dl,) = j.claim(T, 10)
    j.ack([done(dl, "delete")])
    assert shipped(j) == {"b": (3, 9)}


def test_shipped_rewrites_the_prefix_of_a_moved_directory(j, clock):
    _ship(j, clock, [Change(S, "d", "mkdir"), put("d/x"), put("d/s/y"), put("d-z"), put("dz")], {
        "d": lambda op: done(op, "mkdir", is_dir=True),
        "d/x": lambda op: done(op, "put", size=1, mtime_ns=1),
        "d/s/y": lambda op: done(op, "put", size=2, mtime_ns=2),
        "d-z": lambda op: done(op, "put", size=3, mtime_ns=3),
        "dz": lambda op: done(op, "put", size=4, mtime_ns=4)})
    j.enqueue_move(S, "d", "e", is_dir=True)
    (mv,) = j.claim(T, 10)
    j.ack([done(mv, "move", is_dir=True, mtime_ns=5)])
    assert shipped(j) == {"d-z": (3, 3), "dz": (4, 4), "e/": (0, 5), "e/s/y": (2, 2),
                          "e/x": (1, 1)}


def test_ship_key_marks_directories():
    assert ship_key("a/b", False) == b"a/b"
    assert ship_key("a/b", True) == b"a/b/"


# ------------------------------------------------------------------ damaged / newer databases


def _populated(path: Path) -> None:
    jr = Journal(path, {S: (T,)})
    jr.enqueue([put(f"dir{i // 50}/file-{i:05d}-" + "x" * 60, size=i) for i in range(3000)])
    jr.close()


def test_a_damaged_database_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "journal.db"
    _populated(path)
    size = path.stat().st_size
    assert size > 64 * 1024
    with open(path, "r+b") as fh:        # overwrite pages in the middle of the file
        fh.seek(size // 2)
        fh.write(b"\xde\xad\xbe\xef" * 4096)
    with pytest.raises(JournalError) as info:
        Journal(path, {S: (T,)})
    msg = str(info.value)
    assert str(path) in msg and "damaged" in msg and "refusing to start" in msg
    assert path.stat().st_size == size      # not replaced by an empty database


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "journal.db"
    path.write_bytes(b"this is not a database, just some text\n" * 200)
    before = path.read_bytes()
    with pytest.raises(JournalError, match="damaged"):
        Journal(path, {S: (T,)})
    assert path.read_bytes() == before


def test_a_truncated_header_is_refused(tmp_path):
    path = tmp_path / "journal.db"
    _populated(path)
    with open(path, "r+b") as fh:
        fh.write(b"\0" * 100)           # the SQLite header is gone
    with pytest.raises(JournalError):
        Journal(path, {S: (T,)})


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "journal.db"
    Journal(path, {S: (T,)}).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {journal_mod.SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="newer"):
        Journal(path, {S: (T,)})


def test_an_empty_file_starts_a_fresh_journal(tmp_path):
    path = tmp_path / "journal.db"
    path.write_bytes(b"")
    jr = Journal(path, {S: (T,)})
    jr.enqueue([put("a")])
    assert len(jr.claim(T, 10)) == 1
    jr.close()


def test_enqueued_changes_survive_reopening(tmp_path):
    path = tmp_path / "journal.db"
    jr = Journal(path, {S: (T,)})
    jr.enqueue([put("a"), put("b")])
    jr.set_state("k", {"v": 1})
    jr.close()
    jr = Journal(path, {S: (T,)})
    assert sorted(op.path for op in jr.claim(T, 10)) == ["a", "b"]
    assert jr.get_state("k") == {"v": 1}
    jr.close()


def test_odd_path_bytes_round_trip(j, clock):
    name = b"caf\xe9 -e %+\n".decode("utf-8", "surrogateescape")
    j.enqueue([put(name)])
    (op,) = j.claim(T, 10)
    assert op.path == name
    j.ack([done(op, "put", size=1, mtime_ns=1)])
    assert list(iter_shipped(j.db, T, S))[0][0] == b"caf\xe9 -e %+\n"


# ------------------------------------------------------------------ a new database


def test_a_new_database_is_made_aside_and_appears_with_its_tables(tmp_path, monkeypatch):
    """Found in CI: a reader polling the journal at the daemon's first start opened a
    0-byte journal.db ("is empty: no mirrord daemon has run", exit 2). The tables are made
    under another name; journal.db appears once they are there."""
    from mirrord.journal import schema

    path = tmp_path / "state" / "journal.db"
    seen = []
    real = schema.migrate

    def watching(db, at):
        seen.append((at, path.exists()))
        return real(db, at)

    monkeypatch.setattr(schema, "migrate", watching)
    Journal(path, {S: (T,)}).close()
    assert seen[0][0] != path and seen[0][1] is False     # made aside, journal.db not there yet
    conn = journal_mod.connect(path, readonly=True)        # what status opens
    try:
        assert conn.execute("SELECT count(*) FROM ops").fetchone() == (0,)
    finally:
        conn.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["journal.db"]   # nothing aside


def test_a_database_made_meanwhile_by_another_process_is_used(tmp_path, monkeypatch):
    """Two processes starting on a new state_dir: the second's database, made aside, is
    dropped and the first's is used (its rows stay)."""
    from mirrord.journal import schema

    path = tmp_path / "journal.db"
    real = schema.migrate
    calls = []

    def other_first(db, at):
        real(db, at)
        calls.append(at)
        if len(calls) == 1:
            other = Journal(path, {S: (T,)})
            other.enqueue([Change(S, "made-by-the-other", "put")])
            other.close()

    monkeypatch.setattr(schema, "migrate", other_first)
    j = Journal(path, {S: (T,)})
    try:
        assert [op.path for op in j.claim(T, 10)] == ["made-by-the-other"]
    finally:
        j.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["journal.db"]


def test_a_new_database_in_a_read_only_directory_names_journal_db(tmp_path):
    """root ignores permission bits: a read-only bind mount is read-only even to root."""
    import subprocess

    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "--bind", str(state), str(state)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(state)], check=True)
        with pytest.raises(JournalError) as err:
            Journal(state / "journal.db", {S: (T,)})
    finally:
        subprocess.run(["umount", str(state)], check=True)
    assert str(state / "journal.db") in str(err.value) and ".new-" not in str(err.value)


@pytest.mark.parametrize("readonly", [False, True])
def test_an_emptied_database_beside_its_log_is_refused_not_started_empty(tmp_path, readonly):
    """A breaker: journal.db truncated to 0 bytes beside a 4 MB -wal (a restore gone wrong)
    was taken for a new database, the log thrown away, every record gone without a word.
    It is refused now, by the daemon's connection and by status's read-only one; a new
    database (0 bytes, no log) still starts."""
    path = tmp_path / "journal.db"
    _populated(path)
    Path(f"{path}-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\0" * 4092)   # frames it held
    path.write_bytes(b"")
    with pytest.raises(JournalError) as info:
        if readonly:
            journal_mod.connect(path, readonly=True)
        else:
            Journal(path, {S: (T,)})
    assert "is empty (0 bytes) or missing while its write-ahead log" in str(info.value)
    assert Path(f"{path}-wal").stat().st_size == 4096       # left as found
    fresh = tmp_path / "new" / "journal.db"
    Journal(fresh, {S: (T,)}).close()


def test_a_removed_database_beside_its_log_is_refused_not_replayed(tmp_path):
    """Breaker J: journal.db removed beside a WAL that held frames; SQLite replayed the
    log's pages onto a new empty file, a malformed database every write then failed on,
    status blaming a full disk. Refused at open now, as for 0 bytes."""
    path = tmp_path / "journal.db"
    _populated(path)
    Path(f"{path}-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\0" * 4092)
    path.unlink()
    with pytest.raises(JournalError, match="or missing while its write-ahead log"):
        Journal(path, {S: (T,)})
    assert not path.exists() and Path(f"{path}-wal").stat().st_size == 4096


@pytest.mark.parametrize("kept_below", [False, True])
def test_a_put_forgets_what_was_shipped_below_its_name_only_where_it_replaced_it(j, kept_below):
    """On a target with directories a file's put replaced the directory at its name, and
    what was shipped below it is forgotten. On S3 (kept_below: no directories, no tree op)
    the keys below stand on beside the object: forgotten, they stayed on the bucket with no
    delete ever proposed (a comparison over max_delete sent the put alone)."""
    j.enqueue([put("big/sub/f0"), put("big/sub/f1")])
    j.ack([done(op, "put", size=1, mtime_ns=1) for op in j.claim(T, 10)])
    j.enqueue([put("big")])
    (op,) = j.claim(T, 10)
    out = done(op, "put", size=9, mtime_ns=2)
    out.kept_below = kept_below
    j.ack([out])
    below = {"big/sub/f0": (1, 1), "big/sub/f1": (1, 1)} if kept_below else {}
    assert shipped(j) == {"big": (9, 2), **below}
