"""The journal's in-memory directory barriers after a transaction that did not commit.

Found in this session's rehearsal (tests/reliability/test_state_full_exact.py, the state
disk filled and freed): the tree removals of two directories stayed pending for good,
`stalled` on every target, each row waiting for itself (wait_for = its own id). A write
that failed (disk full) rolled the rows back, but not the barriers the enqueue had noted
in memory for them; SQLite gave the same ids to the rows written again, and each found
"its" barrier, its own id, covering its path. Now a transaction that does not commit
makes the next one reload the barriers from the database (writer._FreshTxn).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mirrord.journal import Change, Journal
from tests.fakes import Clock


class DiskFull(sqlite3.OperationalError):
    pass


@pytest.fixture
def j(tmp_path: Path):
    journal = Journal(tmp_path / "journal.db", {"up": ("t",)}, clock=Clock())
    yield journal
    journal.close()


def tree_delete(path: str) -> Change:
    return Change("up", path, "delete", tree=True, time=1.0)


def test_rows_written_again_after_a_rollback_wait_for_nothing_of_the_rolled_back(j):
    j.enqueue([Change("up", "keep.jpg", "put", time=1.0)])
    with pytest.raises(DiskFull):
        with j.transaction():
            j.enqueue([tree_delete("ren"), tree_delete("gone")])
            raise DiskFull("database or disk is full")
    j.enqueue([tree_delete("ren"), tree_delete("gone")])   # the held changes written again
    rows = j.db.execute("SELECT id, path, wait_for FROM ops WHERE path IN (?, ?)",
                        (b"ren", b"gone")).fetchall()
    assert len(rows) == 2
    assert all(wait_for != rid for rid, _path, wait_for in rows), rows
    assert sorted(bytes(p) for _id, p, wf in rows if wf is None) == [b"gone", b"ren"], rows


def test_a_commit_that_fails_is_rolled_back_and_forgets_the_barriers(j, monkeypatch):
    """COMMIT itself can fail (SQLITE_FULL at commit); the transaction is rolled back so
    that the next one begins, and the barriers are reloaded as after any rollback."""
    real_execute = j.db.execute
    failing = {"on": True}

    class Conn:
        def __getattr__(self, name):
            return getattr(real_execute.__self__, name)

        def execute(self, sql, *args):
            if sql == "COMMIT" and failing["on"]:
                failing["on"] = False
                raise DiskFull("database or disk is full")
            return real_execute(sql, *args)
    monkeypatch.setattr(j, "db", Conn())
    with pytest.raises(DiskFull):
        j.enqueue([tree_delete("ren")])
    assert not real_execute.__self__.in_transaction
    j.enqueue([tree_delete("ren")])
    (rid, wait_for), = real_execute("SELECT id, wait_for FROM ops WHERE path = ?", (b"ren",)).fetchall()
    assert wait_for != rid
