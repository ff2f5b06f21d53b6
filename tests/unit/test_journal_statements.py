"""How many SQL statements the journal runs per file on the daemon's main thread.

The main thread records, claims and acks every file; each statement costs several
microseconds of its CPU (and a GIL hand-off), so the burst of 4 KiB files (issue 15)
and the event rate the daemon can follow (issue 18) both depend on this count. These
tests pin the count for the common case - a new file, shipped once - and check the
rows come out as before: one INSERT per new path (no SELECT first), and an ack of
three statements per op (forget what stood below the path, record it, delete the row)
plus one per batch to release the rows that waited for those just deleted.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from mirrord.journal import Change, Journal, Outcome, iter_shipped
from tests.fakes import Clock

S, T = "up", "t"
N = 100


@pytest.fixture
def j(tmp_path: Path) -> Journal:
    jr = Journal(tmp_path / "journal.db", {S: (T,)}, clock=Clock())
    yield jr
    jr.close()


def counted(j: Journal, fn) -> collections.Counter:
    """Statements `fn()` runs on the journal's connection, by their first word. A statement
    that fires triggers (schema 6: shipped_bytes) is traced again, with the same text, for
    each trigger program it runs (SQLite's trace v2 reports sub-programs): a repeat of the
    statement just seen is that, not a second call."""
    seen: collections.Counter = collections.Counter()
    last = [None]

    def trace(sql: str) -> None:
        if sql != last[0]:
            seen.update([sql.split()[0].upper()])
        last[0] = sql

    j.db.set_trace_callback(trace)
    try:
        fn()
    finally:
        j.db.set_trace_callback(None)
    return seen


def test_new_files_cost_one_statement_each_to_record_and_three_to_ack(j):
    changes = [Change(S, f"d/f{i:03d}", "put", size=4096, time=1.0) for i in range(N)]
    rec = counted(j, lambda: j.enqueue(changes))
    # PRAGMA data_version: once per transaction (Journal.transaction, barriers of another writer)
    assert rec == {"INSERT": N, "BEGIN": 1, "PRAGMA": 1, "COMMIT": 1}
    ops = j.claim(T, N)
    assert len(ops) == N
    acks = counted(j, lambda: j.ack([Outcome(op, "put", size=4096, mtime_ns=7, mode=0o644)
                                     for op in ops]))
    # per op: DELETE below the path, INSERT (an upsert) into shipped, DELETE the row; per
    # batch: UPDATE the waiters, INSERT the target's stats
    assert acks == {"DELETE": 2 * N, "INSERT": N + 1, "UPDATE": 1, "BEGIN": 1, "PRAGMA": 1, "COMMIT": 1}
    assert j.db.execute("SELECT COUNT(*) FROM ops").fetchone()[0] == 0
    assert len(list(iter_shipped(j.db, T, S))) == N


def test_a_second_change_to_a_queued_path_still_coalesces(j):
    j.enqueue([Change(S, "a", "put", size=1, time=1.0)])
    j.enqueue([Change(S, "a", "delete", time=2.0)])    # the INSERT does nothing: coalesced
    rows = j.db.execute("SELECT kind, seq, first_seen, event_time FROM ops").fetchall()
    assert rows == [("delete", 2, 1.0, 2.0)]   # first_seen kept, seq moved on


def test_one_ack_releases_every_row_waiting_for_the_ops_it_finished(j):
    """Renames make delete rows that wait for their move rows; acking the moves in one batch
    frees every waiting delete (released once per batch, not once per op), and a failed
    move keeps its delete waiting."""
    for i in range(5):
        assert j.enqueue_move(S, f"old{i}", f"new{i}", is_dir=False) == []
    moves = {op.path: op for op in j.claim(T, 100)}
    assert sorted(moves) == [f"new{i}" for i in range(5)]       # the deletes wait
    j.ack([Outcome(moves[f"new{i}"], "move") for i in range(4)] +
          [Outcome(moves["new4"], error="boom")])               # retried later
    freed = sorted(op.path for op in j.claim(T, 100, now=1e12))
    assert freed == ["new4", "old0", "old1", "old2", "old3"]
    waiting = [bytes(r[0]) for r in j.db.execute("SELECT path FROM ops WHERE wait_for IS NOT NULL")]
    assert waiting == [b"old4"]


def test_an_op_changed_in_flight_is_kept_and_others_in_the_batch_are_deleted(j):
    j.enqueue([Change(S, "a", "put", time=1.0), Change(S, "b", "put", time=1.0)])
    ops = {op.path: op for op in j.claim(T, 10)}
    j.enqueue([Change(S, "a", "put", size=9, time=2.0)])     # arrives while a ships
    j.ack([Outcome(ops["a"], "put", size=1, mtime_ns=1), Outcome(ops["b"], "put", size=1, mtime_ns=1)])
    assert j.db.execute("SELECT path, claimed, size FROM ops").fetchall() == [(b"a", 0, 9)]
    (again,) = j.claim(T, 10)
    assert again.path == "a" and again.seq == ops["a"].seq + 1


def test_a_claim_that_finds_nothing_ready_writes_nothing(j):
    """The main loop claims whenever a worker is free; with nothing ready that is one read,
    not an empty write transaction as well."""
    j.enqueue([Change(S, "a", "put", time=j.clock(), delay=60.0)])   # queued, not due yet
    seen = counted(j, lambda: j.claim(T, 16))
    assert seen == {"SELECT": 1}
