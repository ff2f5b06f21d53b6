"""claim() between two writers on one state database: a row read as ready may be claimed,
or held back, by the other process before this one takes the write lock.

The daemon and `mirrord reconcile` both claim from one journal while a reconcile begun
with the daemon down has not yet seen the daemon start (it looks every DAEMON_LOOK
seconds: mirrord.reconcile.command), and the command queues tree removals into a running
daemon's journal at any time. claim() read the ready rows before BEGIN IMMEDIATE and
marked them claimed by id alone, so what the other process committed in between (its
own claim of the row, a tree removal above it) was not seen: the row was shipped twice,
side by side, or beside the removal that should have held it back.
"""

from __future__ import annotations

from mirrord.journal import Change, Journal
from tests.unit.test_journal_two_writers import S, T, pair  # noqa: F401 (pair: a fixture)


def _before_the_write_lock(j: Journal, monkeypatch, other) -> None:
    """Run `other()` (the other process's commit) once, after j's next claim() has read the
    ready rows and before it takes the write lock."""
    real = type(j).transaction
    fired = []

    def transaction(self):
        if not fired:
            fired.append(1)
            other()
        return real(self)
    monkeypatch.setattr(j, "transaction", transaction.__get__(j))


def test_a_row_the_other_process_claimed_meanwhile_is_not_claimed_again(pair, monkeypatch):  # noqa: F811
    daemon, command, clock = pair
    daemon.enqueue([Change(S, "a.jpg", "put")])
    theirs = []
    _before_the_write_lock(daemon, monkeypatch,
                           lambda: theirs.extend(command.claim(T, 10, now=clock.now + 10_000)))
    mine = daemon.claim(T, 10, now=clock.now + 10_000)
    assert [op.path for op in theirs] == ["a.jpg"]
    assert [op.path for op in mine] == []          # before: ["a.jpg"], shipped twice


def test_a_put_below_a_tree_removal_queued_meanwhile_waits_for_it(pair, monkeypatch):  # noqa: F811
    daemon, command, clock = pair
    daemon.enqueue([Change(S, "d/x", "put")])
    _before_the_write_lock(daemon, monkeypatch,
                           lambda: command.enqueue([Change(S, "d", "delete", tree=True)]))
    got = [op.path for op in daemon.claim(T, 10, now=clock.now + 10_000)]
    assert "d/x" not in got                        # before: ["d/x"], beside the removal
