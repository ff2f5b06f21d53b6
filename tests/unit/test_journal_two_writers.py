"""Two writers on one state database: `mirrord reconcile` queues its repairs into the
journal of a running daemon (mirrord.reconcile.command). The daemon's directory barriers
(journal/barriers.py) were loaded once, at open, so a tree removal or a directory move
the command queued did not hold back the daemon's rows below it: a put below a tree
removal could be claimed beside it (and then removed by it), a delete below a directory
move could run before the move. Journal.transaction reloads them when another connection
has committed (PRAGMA data_version)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.journal import Change, Journal
from tests.fakes import Clock

S, T = "up", "t"


@pytest.fixture
def pair(tmp_path: Path):
    clock = Clock()
    path = tmp_path / "journal.db"
    daemon = Journal(path, {S: (T,)}, clock=clock)
    # the other process: a claimer id of its own (pid 1 with a start time it never had)
    command = Journal(path, {S: (T,)}, clock=clock, reset_claims=False, claimer="1:1")
    yield daemon, command, clock
    command.close()
    daemon.close()


def _claimed(j: Journal, clock: Clock) -> list[str]:
    return sorted(op.path for op in j.claim(T, 100, now=clock.now + 10_000))


def test_a_put_below_a_tree_removal_another_writer_queued_waits_for_it(pair):
    daemon, command, clock = pair
    command.enqueue([Change(S, "d", "delete", tree=True)])
    daemon.enqueue([Change(S, "d/x", "put")])
    assert _claimed(daemon, clock) == ["d"]        # before: ["d", "d/x"], side by side


def test_a_put_below_a_tree_removal_the_other_writer_has_in_flight_waits(pair):
    daemon, command, clock = pair
    command.enqueue([Change(S, "d", "delete", tree=True)])
    (op,) = command.claim(T, 10, now=clock.now + 10_000)     # the command ships it
    assert op.path == "d"
    daemon.enqueue([Change(S, "d/x", "put"), Change(S, "other", "put")])
    assert _claimed(daemon, clock) == ["other"]    # d/x waits: its tree removal is in flight


def test_a_delete_below_a_directory_move_another_writer_queued_waits_for_it(pair):
    daemon, command, clock = pair
    command.enqueue_move(S, "a", "b", is_dir=True)
    daemon.enqueue([Change(S, "b/x", "delete")])
    got = _claimed(daemon, clock)
    assert "b/x" not in got and "b" in got


def test_barriers_are_not_reloaded_when_no_other_writer_committed(pair, monkeypatch):
    daemon, command, clock = pair
    daemon.enqueue([Change(S, "a", "put")])
    loads = []
    import mirrord.journal.writer as writer
    real = writer.load_barriers
    monkeypatch.setattr(writer, "load_barriers",
                        lambda db: (db is daemon.db and loads.append(1)) or real(db))
    daemon.enqueue([Change(S, "b", "put")])
    _claimed(daemon, clock)
    assert loads == []
    command.enqueue([Change(S, "c", "put")])
    daemon.enqueue([Change(S, "e", "put")])
    assert loads == [1]
