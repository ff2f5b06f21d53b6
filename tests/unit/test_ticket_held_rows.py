"""A row a reconcile waits for that is held, or waits behind a held delete, settles as failed
at once (mirrord.journal.read.row_states `held`, mirrord.tickets): nothing ships it before
`mirrord resume-deletes`, and a breaker's `mirrord reconcile` of a held source waited for
it 9 minutes. On a real SQLite journal."""

from __future__ import annotations

import os

from mirrord.journal import Change, Journal
from mirrord.tickets import Ticket


def _journal(tmp_path) -> Journal:
    return Journal(tmp_path / "journal.db", {"up": ("t",)})


def _states(j: Journal, *paths: str) -> dict:
    return {os.fsdecode(k): v for k, v in
            j.row_states("t", "up", [os.fsencode(p) for p in paths]).items()}


def test_rows_held_or_waiting_behind_a_held_removal_say_so(tmp_path):
    j = _journal(tmp_path)
    try:
        j.enqueue([Change("up", "d", "delete", tree=True, time=1.0),     # rm -rf d
                   Change("up", "d/x", "put", time=2.0),                 # mkdir d; echo > d/x
                   Change("up", "d/y/z", "put", time=2.0),
                   Change("up", "other", "put", time=3.0),
                   Change("up", "gone", "delete", time=3.0)])
        states = _states(j, "d", "d/x", "d/y/z", "other", "gone")
        assert all(s.held is None for s in states.values())   # no hold: nothing held
        assert j.hold_deletes("up", reason="mass-change alarm: test")
        states = _states(j, "d", "d/x", "d/y/z", "other", "gone")
        assert {p: s.held for p, s in states.items()} == {
            "d": "up", "d/x": "up", "d/y/z": "up", "other": None, "gone": "up"}
        j.resume_deletes("up")
        assert all(s.held is None for s in _states(j, "d", "d/x", "gone").values())
    finally:
        j.close()


def test_a_ticket_fails_held_rows_at_once_and_waits_for_the_others(tmp_path):
    j = _journal(tmp_path)
    try:
        changes = [Change("up", "d", "delete", tree=True, time=1.0, targets=("t",)),
                   Change("up", "d/x", "put", size=5, time=2.0, targets=("t",)),
                   Change("up", "other", "put", size=3, time=3.0, targets=("t",))]
        j.hold_deletes("up", reason="test")
        ticket = Ticket("t")
        ticket.propose(changes[1:])
        j.enqueue(changes)
        ticket.recorded(changes[1:])
        paths = [os.fsencode(c.path) for c in changes[1:]]
        ticket.resolve("up", j.row_states("t", "up", paths), paths, now=10.0)
        assert ticket.pending == 1          # 'other' waits to be shipped, as before
        assert len(ticket.failed) == 1 and ticket.failed[0].startswith("put 'd/x': waits behind "
                                                                        "the held deletes of "
                                                                        "source 'up'")
        assert "mirrord resume-deletes --source up" in ticket.failed[0]
    finally:
        j.close()


def test_a_row_waiting_behind_a_removal_already_in_flight_is_not_held(tmp_path):
    """A removal claimed before the hold is shipped all the same: what waits for it ships
    right after, so a reconcile waits for it (review: it failed at once)."""
    j = _journal(tmp_path)
    try:
        j.enqueue([Change("up", "d", "delete", tree=True, time=1.0)])
        (op,) = j.claim("t", 10, now=1e12)
        j.enqueue([Change("up", "d/x", "put", time=2.0)])
        j.hold_deletes("up", reason="test")
        assert _states(j, "d/x")["d/x"].held is None
    finally:
        j.close()
