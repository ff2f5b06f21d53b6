"""One outcome the journal cannot record never holds up its batch (mirrord.pipeline), and
an mtime outside 64-bit nanoseconds is recorded clamped and compared the same way
(mirrord.compare.stored_ns).

A breaker: a file dated 2300 (`touch -d 2300-01-01`, which ext4 keeps) raised
OverflowError in the ack ("Python int too large to convert to SQLite INTEGER"); the
pipeline dropped the whole batch's outcomes, its rows stayed claimed, and no later change
to any of the 200 files shipped with it went out until a restart."""

from __future__ import annotations

import sqlite3

import pytest

from mirrord.compare import INT64_MAX, INT64_MIN, against_shipped, stored_ns
from mirrord.journal import Change, Outcome, iter_shipped
from mirrord.targets.model import Entry
from tests.unit.test_pipeline import Env, puts

Y2300 = 10_413_792_000 * 10**9 + 5
BEFORE_1677 = -(10**19)


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path, {"a": b"1", "b": b"22", "c": b"333", "future": b"f"})
    yield e
    e.journal.close()


@pytest.mark.parametrize("ns,stored", [(Y2300, INT64_MAX), (BEFORE_1677, INT64_MIN),
                                       (1_700_000_000 * 10**9, 1_700_000_000 * 10**9)])
def test_a_mtime_out_of_range_is_recorded_clamped_and_then_compares_equal(env, ns, stored):
    env.journal.enqueue([Change("up", "future", "put", size=1)])
    (op,) = env.journal.claim("memory", 10, now=1e12)
    env.journal.ack([Outcome(op, "put", size=1, mtime_ns=ns, mode=0o644)])
    (row,) = list(iter_shipped(env.journal.db, "memory", "up"))
    assert row[2] == stored
    entry = Entry("future", False, 1, ns / 1e9, mode=0o644, mtime_ns=ns)
    assert against_shipped(entry, row, keeps_mode=True) is None   # not re-sent at each look
    assert stored_ns(ns) == stored


def test_a_batch_with_an_outcome_that_cannot_be_recorded_records_the_rest(env, monkeypatch, caplog):
    real = env.journal.ack

    def ack(outcomes):   # input no rule foresaw: SQLite cannot hold one value
        if any(o.op.path == "b" and o.error is None for o in outcomes):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real(outcomes)

    monkeypatch.setattr(env.journal, "ack", ack)
    env.pipeline.record(puts("a", "b", "c"))
    env.pipeline.pump()
    env.pipeline.pump()
    rows = {bytes(p).decode(): (claimed, error) for p, claimed, error in env.journal.db.execute(
        "SELECT path, claimed, last_error FROM ops")}
    assert set(rows) == {"b"}, rows                     # a and c recorded, gone from the queue
    assert rows["b"][0] == 0 and "cannot record the outcome: OverflowError" in rows["b"][1]
    assert not env.pipeline.unacked
    assert "recording it op by op" in caplog.text
    env.pipeline.record(puts("a"))                      # later changes to its neighbours ship
    env.pipeline.pump()
    env.pipeline.pump()
    assert env.ops() == 1


def test_a_disk_error_while_acking_one_by_one_holds_the_rest(env, monkeypatch):
    real = env.journal.ack
    calls = []

    def ack(outcomes):
        calls.append(len(outcomes))
        if len(calls) == 1:
            raise ValueError("a bug")
        if len(calls) == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return real(outcomes)

    monkeypatch.setattr(env.journal, "ack", ack)
    env.pipeline.record(puts("a", "b", "c"))
    env.pipeline.pump()
    env.pipeline.pump()
    assert [o.op.path for o in env.pipeline.unacked] == ["b", "c"]   # held, not failed
    env.pipeline.pump()
    assert not env.pipeline.unacked and env.ops() == 0
