"""A catch-up's proposal recorded over a put in flight (mirrord.journal.proposals): done at
that put's acknowledgement when the put shipped what the walk saw, kept otherwise. On a
real SQLite journal; the worker's answer is an Outcome written by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.journal import Change, Journal, Outcome
from mirrord.journal.proposals import Seen
from tests.fakes import Clock

S, T = "up", "t"
SIZE, NS, MODE = 4096, 1_700_000_000_123_456_789, 0o644
CTIME = 1_700_000_001_000_000_007


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def j(tmp_path: Path, clock: Clock) -> Journal:
    jr = Journal(tmp_path / "state" / "journal.db", {S: (T,)}, clock=clock)
    yield jr
    jr.close()


def live(path: str = "f", kind: str = "put") -> Change:
    return Change(S, path, kind, size=SIZE)


def proposal(path: str = "f", *, size: int = SIZE, ns: int = NS, mode: int | None = MODE,
             kind: str = "put", ctime: int = CTIME) -> Change:
    return Change(S, path, kind, size=size, targets=(T,), seen=Seen(size, ns, mode, ctime))


def shipped_put(op, *, size: int = SIZE, ns: int = NS, mode: int | None = MODE,
                ctime: int = CTIME) -> Outcome:
    return Outcome(op, "put", size=size, mtime_ns=ns, mode=mode, ctime_ns=ctime)


def claim(j: Journal, clock: Clock):
    return j.claim(T, 100, now=clock.now + 10_000)


def queued(j: Journal) -> list[tuple[str, str]]:
    return [(bytes(p).decode(), k) for p, k in j.db.execute("SELECT path, kind FROM ops")]


def test_a_proposal_of_what_the_put_in_flight_ships_is_done_with_it(j, clock):
    j.enqueue([live()])
    (op,) = claim(j, clock)
    j.enqueue([proposal()])                      # the links walk found the file in flight
    j.ack([shipped_put(op)])
    assert queued(j) == []                       # not sent a second time
    assert claim(j, clock) == []
    assert len(j._proposals) == 0


@pytest.mark.parametrize("shipped", [
    {"size": SIZE + 1},                          # the put read a longer file
    {"ns": NS + 1},                              # ... a later write (mtime)
    {"mode": 0o600},                             # ... another mode
    {"mode": None},                              # the target did not say which mode it keeps
    # same size, mtime and mode, another inode change: a write through another name whose
    # mtime was put back (touch -r, rsync --inplace -t) between the two looks (a breaker)
    {"ctime": CTIME + 1},
    {"ctime": 0},                                # the worker did not say (not known)
])
def test_a_proposal_that_saw_something_else_is_sent_again(j, clock, shipped):
    j.enqueue([live()])
    (op,) = claim(j, clock)
    j.enqueue([proposal()])
    j.ack([shipped_put(op, **{"size": SIZE, "ns": NS, "mode": MODE, "ctime": CTIME, **shipped})])
    assert queued(j) == [("f", "put")]
    (again,) = claim(j, clock)
    assert again.path == "f" and again.seq == op.seq + 1


def test_a_mode_the_target_does_not_keep_is_not_compared(j, clock):
    j.enqueue([live()])
    (op,) = claim(j, clock)
    j.enqueue([proposal(mode=None)])             # catch-up: keeps_mode False
    j.ack([shipped_put(op, mode=None)])
    assert queued(j) == []


def test_a_live_change_after_the_proposal_is_sent(j, clock):
    j.enqueue([live()])
    (op,) = claim(j, clock)
    j.enqueue([proposal()])
    j.enqueue([live()])                          # a write the watcher saw: always sent
    j.ack([shipped_put(op)])
    assert queued(j) == [("f", "put")]


@pytest.mark.parametrize("kind", ["put", "attr"])
def test_a_live_change_before_the_proposal_is_sent(j, clock, kind):
    j.enqueue([live()])
    (op,) = claim(j, clock)
    j.enqueue([live(kind=kind)])                 # moved on by the watcher first
    j.enqueue([proposal()])
    j.ack([shipped_put(op)])
    assert queued(j) == [("f", "put")]


def test_an_attr_proposal_over_a_put_in_flight_is_settled_by_its_mode(j, clock):
    j.enqueue([live()])
    (op,) = claim(j, clock)
    j.enqueue([proposal(kind="attr")])           # the walk saw a chmod the put then shipped
    j.ack([shipped_put(op)])
    assert queued(j) == []


def test_a_failed_put_keeps_the_row_and_forgets_the_proposal(j, clock):
    j.enqueue([live()])
    (op,) = claim(j, clock)
    j.enqueue([proposal()])
    j.ack([Outcome(op, error="timed out")])
    assert len(j._proposals) == 0
    (again,) = claim(j, clock)
    j.ack([shipped_put(again)])
    assert queued(j) == []


def test_a_proposal_over_a_waiting_row_is_recorded_as_before(j, clock):
    j.enqueue([live()])
    j.enqueue([proposal()])                      # nothing in flight: one row, sent once
    assert len(j._proposals) == 0
    (op,) = claim(j, clock)
    j.ack([shipped_put(op)])
    assert queued(j) == []


def test_another_process_claim_is_not_settled_here(tmp_path, clock):
    db = tmp_path / "state" / "journal.db"
    daemon = Journal(db, {S: (T,)}, clock=clock)
    other = Journal(db, {S: (T,)}, clock=clock, claimer="1:1")
    try:
        daemon.enqueue([live()])
        (op,) = daemon.claim(T, 100, now=clock.now + 10_000)
        other.enqueue([proposal()])              # e.g. the reconcile command's process
        assert len(other._proposals) == 0
        daemon.ack([shipped_put(op)])
        assert queued(daemon) == [("f", "put")]  # its ack knows nothing of it: sent again
    finally:
        other.close()
        daemon.close()


def test_a_tree_row_in_flight_is_not_settled(j, clock):
    j.enqueue([Change(S, "f", "put", tree=True, size=SIZE)])   # a file over a directory
    (op,) = claim(j, clock)
    j.enqueue([proposal()])
    assert len(j._proposals) == 0
    j.ack([shipped_put(op)])
    assert queued(j) == [("f", "put")]


def test_a_reused_row_id_does_not_inherit_an_old_proposal(j, clock):
    j.enqueue([live()])
    (op,) = claim(j, clock)
    j.enqueue([proposal()])
    j.ack([shipped_put(op)])                     # done: the id may be handed out again
    j.enqueue([live("g")])
    (op2,) = claim(j, clock)
    j.enqueue([live("g")])                       # a real second change while in flight
    j.ack([shipped_put(op2)])
    assert queued(j) == [("g", "put")]


def test_released_claims_drop_every_proposal(j, clock):
    j.enqueue([live()])
    (op,) = claim(j, clock)
    j.enqueue([proposal()])
    assert len(j._proposals) == 1
    j.release_claims(claimers=[j.claimer])
    assert len(j._proposals) == 0
    (again,) = claim(j, clock)
    j.ack([shipped_put(again)])
    assert queued(j) == []


def test_a_batch_that_rolls_back_leaves_no_proposal(j, clock, monkeypatch):
    """The note is kept only once its transaction commits: a batch that fails after the
    proposal (a full disk) must not leave one that a later change by another process,
    moving the row to the same seq, would satisfy (a review)."""
    j.enqueue([live()])
    (op,) = claim(j, clock)
    real = j._upsert

    def failing(target, source, path, *args, **kwargs):
        if path == b"boom":
            raise OSError(28, "No space left on device")
        return real(target, source, path, *args, **kwargs)

    monkeypatch.setattr(j, "_upsert", failing)
    with pytest.raises(OSError):
        j.enqueue([proposal(), live("boom")])
    monkeypatch.undo()
    assert len(j._proposals) == 0
    j.enqueue([live()])                          # e.g. another process's change: seq 2
    j.ack([shipped_put(op)])
    assert queued(j) == [("f", "put")]


def test_a_new_row_forgets_what_its_id_had(j, clock):
    j.enqueue([live()])
    (op,) = claim(j, clock)
    j._proposals.note(op.id + 1, b"g", 2, Seen(SIZE, NS, MODE, CTIME))   # left by a deleted row
    j.enqueue([live("g")])                       # gets that id
    (op_f, op_g) = sorted(claim(j, clock) + [op], key=lambda o: o.path)
    assert op_g.id == op.id + 1
    assert len(j._proposals) == 0


def test_releasing_another_process_claims_keeps_this_ones_proposals(j, clock):
    j.enqueue([live()])
    claim(j, clock)
    j.enqueue([proposal()])
    j.release_claims(claimers=["0:0"])           # a gone process's rows (ClaimWatch)
    assert len(j._proposals) == 1
