"""The journal hands out no row while another of the same target and source is in flight
at an ancestor of its path or below it (barriers.InFlight), counting a move's source end;
siblings, other sources and other targets are independent. The shapes that lost data
without it run on a real LocalTarget in tests/integration/test_ops_at_and_below_a_path.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from mirrord.errors import BecameAFile
from mirrord.journal import Change, Journal, Outcome
from mirrord.ship_rules import error_outcome
from tests.fakes import Clock

S, S2, T, T2 = "up", "up2", "t", "t2"


@pytest.fixture
def j(tmp_path: Path) -> Journal:
    jr = Journal(tmp_path / "journal.db", {S: (T, T2), S2: (T,)}, clock=Clock(1_800_000_000.0))
    yield jr
    jr.close()


def paths(ops) -> list[str]:
    return sorted(op.path for op in ops)


def acked(j: Journal, ops) -> None:
    j.ack([Outcome(op, "mkdir" if op.kind == "mkdir" else op.kind, is_dir=op.kind == "mkdir",
                   size=1, mtime_ns=1) for op in ops])


@pytest.mark.parametrize("first", ["mkdir", "put", "delete", "attr"])
def test_every_kind_in_flight_holds_back_the_rows_below_it(j, first):
    j.enqueue([Change(S, "a", first)])
    held = j.claim(T, 10)
    j.enqueue([Change(S, "a/b/c", "put"), Change(S, "a/x", "put")])
    assert j.claim(T, 10) == []
    acked(j, held)
    assert paths(j.claim(T, 10)) == ["a/b/c", "a/x"]


def test_a_row_in_flight_deep_below_holds_back_each_ancestor(j):
    j.enqueue([Change(S, "a/b/c", "put")])
    held = j.claim(T, 10)
    j.enqueue([Change(S, "a/b", "attr"), Change(S, "a/b2", "attr")])
    assert paths(j.claim(T, 10)) == ["a/b2"]
    acked(j, held)
    assert paths(j.claim(T, 10)) == ["a/b"]


def test_siblings_whose_names_start_the_same_are_independent(j):
    j.enqueue([Change(S, "d", "mkdir")])
    j.claim(T, 10)
    j.enqueue([Change(S, "dd/x", "put"), Change(S, "d-1", "put"), Change(S, "d.x/y", "put")])
    assert paths(j.claim(T, 10)) == ["d-1", "d.x/y", "dd/x"]


def test_other_sources_and_other_targets_are_independent(j):
    j.enqueue([Change(S, "d", "delete")])
    assert paths(j.claim(T, 10)) == ["d"]
    j.enqueue([Change(S2, "d/x", "put"), Change(S, "d/x", "put")])
    assert paths(j.claim(T, 10)) == ["d/x"]                       # up2's, on t
    assert [(op.source, op.path) for op in j.claim(T2, 10)] == [(S, "d")]   # t2's own rows
    assert j.claim(T2, 10) == []                                   # up's d/x on t2: d there


def test_a_moves_source_end_holds_back_the_rows_below_it(j):
    """A file's move from m to n in flight takes what stands at m away on the target: a
    row below m (m a directory now) waits for it; so does a row below n. The delete of m
    queued with the move names n only as where the bytes went: n/y does not wait for it."""
    j.enqueue([Change(S, "m", "put")])
    acked(j, j.claim(T, 10))
    j.enqueue_move(S, "m", "n", is_dir=False)
    (mv,) = j.claim(T, 10)
    assert (mv.path, mv.kind, mv.src) == ("n", "move", "m")
    j.enqueue([Change(S, "m/x", "put"), Change(S, "n/y", "put"), Change(S, "o", "put")])
    assert paths(j.claim(T, 10)) == ["o"]
    acked(j, [mv])
    (rm, ny) = sorted(j.claim(T, 10), key=lambda op: op.path)   # m's own row: the move's
    assert (rm.path, rm.kind, ny.path) == ("m", "delete", "n/y")  # delete, waiting for it
    acked(j, [rm, ny])
    assert paths(j.claim(T, 10)) == ["m/x"]


def test_rows_claimed_in_one_call_count(j):
    """The first row of a path handed out holds back the rows below it in the same claim."""
    j.enqueue([Change(S, "a", "mkdir"), Change(S, "a/b", "mkdir"), Change(S, "a/b/c", "put"),
               Change(S, "z", "put")])
    assert paths(j.claim(T, 10)) == ["a", "z"]


def test_a_target_without_directories_hands_out_a_new_directory_with_its_files(j):
    """S3: a directory's mkdir where no file was sent writes no object (a HEAD finds
    nothing): its files go beside it (mirrord.journal.key_overlaps)."""
    j.enqueue([Change(S, "a", "mkdir"), Change(S, "a/b", "put"), Change(S, "a/c/d", "put")])
    assert paths(j.claim(T, 10, directories=False)) == ["a", "a/b", "a/c/d"]


@pytest.mark.parametrize("kind", ["put", "delete", "attr"])
def test_a_target_without_directories_keeps_a_key_s_writes_apart_from_keys_below(j, kind):
    """S3 on SeaweedFS: a request that writes or deletes the object `a` beside a put below
    `a/` lost that put (key_overlaps). Rows at a key and below it, handed out in one claim
    or while one is in flight, go one side at a time; other keys go on."""
    j.enqueue([Change(S, "a", kind), Change(S, "a/b", "put"), Change(S, "z", "put")])
    assert paths(j.claim(T, 10, directories=False)) == ["a", "z"]
    assert paths(j.claim(T, 10, directories=False)) == []
    j.enqueue([Change(S, "q/r", "put")])
    assert paths(j.claim(T, 10, directories=False)) == ["q/r"]
    j.enqueue([Change(S, "q", "put")])                  # a key above one in flight
    assert paths(j.claim(T, 10, directories=False)) == []


def test_a_target_without_directories_keeps_a_mkdir_over_a_sent_file_apart(j):
    """`rm a; mkdir a; echo > a/b` with the file a shipped: a's mkdir deletes the object a
    (remove_file_at), so a/b waits for it, and it waits for a row below in flight."""
    j.enqueue([Change(S, "a", "put"), Change(S, "c", "put")])
    acked(j, j.claim(T, 10, directories=False))
    j.enqueue([Change(S, "a", "mkdir"), Change(S, "a/b", "put")])
    held = j.claim(T, 10, directories=False)
    assert paths(held) == ["a"]
    assert paths(j.claim(T, 10, directories=False)) == []
    acked(j, held)
    assert paths(j.claim(T, 10, directories=False)) == ["a/b"]
    j.enqueue([Change(S, "c/d", "put")])                 # the other way round
    assert paths(j.claim(T, 10, directories=False)) == ["c/d"]
    j.enqueue([Change(S, "c", "mkdir")])
    assert paths(j.claim(T, 10, directories=False)) == []


def test_a_target_without_directories_keeps_a_mkdir_over_a_landed_file_apart(j):
    """The file e was stored, then found changed (errors.ChangedWhileSent): no `shipped`
    row names it, the target holds it (first_copies): e's mkdir deletes it, e/f waits."""
    j.enqueue([Change(S, "e", "put")])
    (op,) = j.claim(T, 10, directories=False)
    j.first_copies.sending([op])
    j.first_copies.looked(op, SimpleNamespace(kind="file", size=5, mtime_ns=7, ctime_ns=7,
                                              sample=b"s", prefix_sample=b""))
    j.ack([Outcome(op, error="ChangedWhileSent: changed", busy=True, landed=True)])
    j.enqueue([Change(S, "e", "mkdir"), Change(S, "e/f", "put")])
    assert paths(j.claim(T, 10, directories=False)) == ["e"]


def test_a_landed_file_is_kept_apart_after_a_restart(tmp_path):
    """As above, the daemon restarted between the answer and the mkdir: the journal keeps
    the landing (ops.landed; it was memory only, and e/f went beside e's mkdir)."""
    jr = Journal(tmp_path / "journal.db", {S: (T,)}, clock=Clock(1_800_000_000.0))
    jr.enqueue([Change(S, "e", "put")])
    (op,) = jr.claim(T, 10, directories=False)
    jr.ack([Outcome(op, error="ChangedWhileSent: changed", busy=True, landed=True)])
    jr.close()
    jr = Journal(tmp_path / "journal.db", {S: (T,)}, clock=Clock(1_800_000_100.0))
    try:
        jr.enqueue([Change(S, "e", "mkdir"), Change(S, "e/f", "put")])
        held = jr.claim(T, 10, directories=False)
        assert paths(held) == ["e"]
        acked(jr, held)                                  # the mkdir deleted the object e
        assert jr.db.execute("SELECT landed FROM ops").fetchall() == [(0,)]
        assert paths(jr.claim(T, 10, directories=False)) == ["e/f"]
    finally:
        jr.close()


def test_rows_held_back_do_not_fill_the_claims_window(j):
    """A reconcile of new directories queues each mkdir before the files below it: with d0's
    mkdir in flight the files below it are left out of the query, so a claim of 4 still
    finds d1 (before, it saw only d0's files and handed out nothing: the workers sat idle
    until d0 was acked, one directory at a time)."""
    j.enqueue([Change(S, f"d{i}", "mkdir") if n < 0 else Change(S, f"d{i}/f{n:02}", "put")
               for i in range(3) for n in range(-1, 20)])
    assert paths(j.claim(T, 4)) == ["d0"]
    assert paths(j.claim(T, 4)) == ["d1"]
    assert paths(j.claim(T, 4)) == ["d2"]
    assert j.claim(T, 4) == []


def test_many_rows_in_flight_still_hold_back_every_row_below_them(j):
    """More rows in flight than the query's clause takes (SQL_HELD_MAX: an rsync batch holds
    thousands): the ones past it are still checked row by row."""
    from mirrord.journal.barriers import SQL_HELD_MAX
    n = SQL_HELD_MAX + 10
    j.enqueue([Change(S, f"f{i:03}", "put") for i in range(n)])
    assert len(j.claim(T, 1000)) == n
    j.enqueue([Change(S, f"f{i:03}/x", "put") for i in range(n)] + [Change(S, "g", "put")])
    assert paths(j.claim(T, 1000)) == ["g"]


@pytest.mark.parametrize("directories", [True, False])
def test_a_put_in_flight_whose_row_became_a_mkdir_still_holds_back_the_rows_below(j, directories):
    """`rm X; mkdir X; echo > X/y` while X's put is in flight: its row is a mkdir now, its
    worker still sends PutObject X. Read by the row's kind, X/y went beside it (S3: a pair
    SeaweedFS loses); the row counts as what it was claimed as (ops.claimed_kind), and as
    writing once changed."""
    j.enqueue([Change(S, "X", "put")])
    held = j.claim(T, 10, directories=directories)
    j.enqueue([Change(S, "X", "mkdir"), Change(S, "X/y", "put"), Change(S, "z", "put")])
    assert paths(j.claim(T, 10, directories=directories)) == ["z"]
    acked(j, held)
    assert paths(j.claim(T, 10, directories=directories)) == ["X"]


@pytest.mark.parametrize("directories", [True, False])
def test_a_move_in_flight_whose_row_became_a_put_still_holds_its_source_end(j, directories):
    """m moved to n, the move in flight, then n written: the row at n is a put now (its src
    gone), and the move's worker still takes m away on the target: m/x waits for it."""
    j.enqueue([Change(S, "m", "put")])
    acked(j, j.claim(T, 10, directories=directories))
    j.enqueue_move(S, "m", "n", is_dir=False)
    (mv,) = j.claim(T, 10, directories=directories)
    j.enqueue([Change(S, "n", "put"), Change(S, "m/x", "put"), Change(S, "o", "put")])
    assert j.db.execute("SELECT kind, src FROM ops WHERE path = ?", (b"n",)).fetchone() == ("put", None)
    assert paths(j.claim(T, 10, directories=directories)) == ["o"]


def test_a_target_without_directories_lets_a_retried_mkdir_go_beside_the_keys_below(j):
    """A mkdir's worker that finds a file waits on every try (ship_rules.not_yet), so a
    retried mkdir writes nothing at its key. Counted as writing (the rule before), a mkdir
    retried after an outage waited while files kept arriving below it (their rows ready
    first), and the second claim after the outage handed out nothing."""
    j.enqueue([Change(S, "a", "mkdir")])
    (op,) = j.claim(T, 10, directories=False)
    j.ack([Outcome(op, error="RetryableError: timed out")])
    j.enqueue([Change(S, "a/b", "put")])
    first = j.claim(T, 10, now=2e9, directories=False)
    assert paths(first) == ["a", "a/b"]
    j.enqueue([Change(S, "a/c", "put")])
    assert paths(j.claim(T, 10, now=2e9, directories=False)) == ["a/c"]


def test_a_target_without_directories_keeps_a_mkdir_over_a_file_cut_short_apart(j):
    """The put of e was in flight when its process died (release_claims): it may have
    stored e, so e's mkdir (after `rm e; mkdir e; echo > e/f`) deletes an object, and e/f
    waits for it. The mark survives a restart (ops.landed)."""
    j.enqueue([Change(S, "e", "put")])
    j.claim(T, 10, directories=False)
    j.db.execute("UPDATE ops SET claimer = 'gone'")
    assert j.release_claims(claimers=["gone"]) == 1
    j.enqueue([Change(S, "e", "mkdir"), Change(S, "e/f", "put")])
    assert paths(j.claim(T, 10, directories=False)) == ["e"]


@pytest.mark.parametrize("directories", [True, False])
def test_mkdirs_cut_short_unchanged_hold_no_file_on_the_target(j, directories):
    """A mkdir's worker never sends a file (ship_rules.not_yet), so a crash that cut short
    mkdirs unchanged since their claim leaves no file a tree removal would take: 3 of them
    and `rm -rf x` counted 4 files destroyed, not the 1 shipped (review of stop 48). A
    mkdir changed since its claim (a file now) may have: it still counts."""
    j.enqueue([Change(S, "x/f", "put")])
    acked(j, j.claim(T, 10, directories=directories))
    j.enqueue([Change(S, f"x/{d}", "mkdir") for d in ("a", "b", "c")])
    j.claim(T, 10, directories=directories)
    j.enqueue([Change(S, "x/c", "put")])                # x/c a file since its claim
    j.db.execute("UPDATE ops SET claimer = 'gone' WHERE claimed != 0")
    assert j.release_claims(claimers=["gone"]) == 3
    landed = j.db.execute("SELECT path FROM ops WHERE landed = 1 ORDER BY path").fetchall()
    assert [bytes(p) for (p,) in landed] == [b"x/c"]
    assert j.files_removed_with(S, "x", target=T) == 2


def test_a_mkdir_made_a_put_is_a_first_try_and_no_failure(j):
    """The busy answer of a mkdir that found a file (errors.BecameAFile) makes its row that
    file's put: ready at once, on its first try, no error, so the target is not shown
    degraded for it (review: it counted as a failing row until it ran)."""
    j.enqueue([Change(S, "X", "mkdir")])
    (op,) = j.claim(T, 10)
    j.ack([error_outcome(op, BecameAFile("'X' is a file at the source"))])
    row = j.db.execute("SELECT kind, is_dir, attempts, busy, last_error, next_try FROM ops "
                       "WHERE path = ?", (b"X",)).fetchone()
    assert row == ("put", 0, 0, 0, None, 0)
    assert j.backlog()[T].failing == 0
    (put,) = j.claim(T, 10)
    assert (put.path, put.kind, put.attempts) == ("X", "put", 0)


@pytest.mark.parametrize("shape", ["tree-put", "dir-move", "tree-removal"])
def test_ops_cut_short_that_send_what_they_find_are_landed(j, shape):
    """A tree put (`rm -r d; echo > d`), a directory's move and a tree removal each send
    the file their worker finds: cut short by a crash, unchanged since their claim, the
    file may be on the target, and the alarm counts a later overwrite of it."""
    if shape == "tree-put":
        j.enqueue([Change(S, "d", "delete", tree=True), Change(S, "d", "put")])
    elif shape == "dir-move":
        j.enqueue([Change(S, "c", "mkdir")])
        acked(j, j.claim(T, 10))
        j.enqueue_move(S, "c", "d", is_dir=True)
    else:
        j.enqueue([Change(S, "d", "delete", tree=True)])
    (op,) = [o for o in j.claim(T, 10) if o.path == "d"]
    j.db.execute("UPDATE ops SET claimer = 'gone' WHERE claimed != 0")
    assert j.release_claims(claimers=["gone"]) >= 1
    assert j.db.execute("SELECT landed FROM ops WHERE path = ?", (b"d",)).fetchone() == (1,)
