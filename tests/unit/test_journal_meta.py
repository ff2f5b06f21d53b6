"""The journal's metadata side (schema 2): 'attr' changes and how they coalesce, the mode
recorded in `shipped`, what claim() hands to attr ops and moves, and the in-place
migration of a version-1 database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mirrord.errors import JournalError
from mirrord.journal import SCHEMA_VERSION, Change, Journal, Outcome, iter_shipped
from tests.fakes import Clock

S, T = "up", "t"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def j(tmp_path: Path, clock: Clock) -> Journal:
    jr = Journal(tmp_path / "state" / "journal.db", {S: (T,)}, clock=clock)
    yield jr
    jr.close()


def ch(path: str, kind: str, **kw) -> Change:
    return Change(S, path, kind, **kw)


def kinds(j: Journal) -> dict[str, tuple[str, str | None]]:
    return {bytes(p).decode(): (k, bytes(s).decode() if s is not None else None)
            for p, k, s in j.db.execute("SELECT path, kind, src FROM ops")}


def ship(j: Journal, path: str, *, size=4, mtime_ns=99, mode=0o644, kind="put", is_dir=False):
    j.enqueue([ch(path, "mkdir" if is_dir else "put")])
    (op,) = [o for o in j.claim(T, 100, now=1e12) if o.path == path]
    j.ack([Outcome(op, kind, size=size, mtime_ns=mtime_ns, mode=mode, is_dir=is_dir)])


# ------------------------------------------------------------------ coalescing


@pytest.mark.parametrize("pending", ["put", "delete", "mkdir"])
def test_attr_on_a_pending_op_keeps_the_stronger_kind(j, pending):
    j.enqueue([ch("a", pending, size=7)])
    j.enqueue([ch("a", "attr")])
    assert kinds(j) == {"a": (pending, None)}
    assert j.db.execute("SELECT size FROM ops").fetchone()[0] == 7   # the pending size stays


def test_attr_on_a_pending_move_keeps_the_move_and_its_source(j):
    j.enqueue_move(S, "a", "b", is_dir=False)
    j.enqueue([ch("b", "attr")])
    assert kinds(j) == {"b": ("move", "a"), "a": ("delete", "b")}


@pytest.mark.parametrize("later", ["put", "delete", "mkdir"])
def test_put_delete_or_mkdir_replaces_a_pending_attr(j, later):
    j.enqueue([ch("a", "attr")])
    j.enqueue([ch("a", later)])
    assert kinds(j) == {"a": (later, None)}


def test_attr_on_attr_stays_attr(j):
    j.enqueue([ch("a", "attr")])
    j.enqueue([ch("a", "attr")])
    assert kinds(j) == {"a": ("attr", None)}
    assert j.db.execute("SELECT seq FROM ops").fetchone()[0] == 2


def test_attr_arriving_while_a_put_is_in_flight_runs_the_put_again(j):
    j.enqueue([ch("a", "put")])
    (op,) = j.claim(T, 10, now=1e12)
    j.enqueue([ch("a", "attr")])                 # the chmod may have come after the look
    j.ack([Outcome(op, "put", size=1, mtime_ns=5, mode=0o600)])
    (again,) = j.claim(T, 10, now=1e12)
    assert again.kind == "put"


# ------------------------------------------------------------------ shipped mode


def test_mode_is_recorded_for_files_and_directories(j):
    ship(j, "f", mode=0o640)
    ship(j, "d", mode=0o2775, kind="mkdir", is_dir=True, size=0)
    got = {bytes(k).decode(): (size, m, mode) for k, size, m, _t, mode in iter_shipped(j.db, T, S)}
    assert got == {"f": (4, 99, 0o640), "d/": (0, 99, 0o2775)}


def test_attr_op_carries_what_was_shipped_for_its_path(j):
    ship(j, "f", size=4, mtime_ns=99, mode=0o600)
    j.enqueue([ch("f", "attr")])
    (op,) = j.claim(T, 10, now=1e12)
    assert op.kind == "attr" and op.shipped == (4, 99, 0o600)


def test_attr_op_of_a_path_never_shipped_carries_nothing(j):
    j.enqueue([ch("new", "attr")])
    (op,) = j.claim(T, 10, now=1e12)
    assert op.shipped is None


def test_a_meta_outcome_updates_mtime_and_mode_but_keeps_size_and_token(j):
    j.enqueue([ch("f", "put")])
    (op,) = j.claim(T, 10, now=1e12)
    j.ack([Outcome(op, "put", size=4, mtime_ns=99, token="etag1", mode=0o644)])
    j.enqueue([ch("f", "attr")])
    (op,) = j.claim(T, 10, now=1e12)
    j.ack([Outcome(op, "meta", size=4, mtime_ns=123, mode=0o600)])
    assert list(iter_shipped(j.db, T, S)) == [(b"f", 4, 123, "etag1", 0o600)]


def test_move_carries_the_mode_its_source_was_shipped_with(j):
    ship(j, "a", size=4, mtime_ns=99, mode=0o600)
    j.enqueue_move(S, "a", "b", is_dir=False)
    (mv,) = j.claim(T, 10, now=1e12)
    assert mv.src_shipped == (4, 99, 0o600)


def test_a_moved_directory_keeps_the_modes_below_it(j):
    ship(j, "d/x", mode=0o600)
    j.enqueue_move(S, "d", "e", is_dir=True)
    (mv,) = j.claim(T, 10, now=1e12)
    j.ack([Outcome(mv, "move", is_dir=True, mode=0o755)])
    got = {bytes(k).decode(): mode for k, *_rest, mode in iter_shipped(j.db, T, S)}
    assert got == {"e/": 0o755, "e/x": 0o600}


def test_iter_shipped_with_a_prefix_yields_only_rows_below_it(j):
    for p in ("d/x", "d/y/z", "d0", "dd/x", "e"):
        ship(j, p)
    ship(j, "d", kind="mkdir", is_dir=True, size=0)    # the directory's own row: not below it
    keys = [k for k, *_ in iter_shipped(j.db, T, S, b"d")]
    assert keys == [b"d/x", b"d/y/z"]


# ------------------------------------------------------------------ migration


V1_SHIPPED = """CREATE TABLE shipped (target TEXT NOT NULL, source TEXT NOT NULL, key BLOB NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, token TEXT,
    PRIMARY KEY (target, source, key)) WITHOUT ROWID"""


def make_v1(path: Path) -> None:
    """A version-1 state database as mirrord 1 left it: shipped rows and a pending op."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(V1_SHIPPED + """;
        CREATE TABLE ops (id INTEGER PRIMARY KEY, target TEXT NOT NULL, source TEXT NOT NULL,
            path BLOB NOT NULL, kind TEXT NOT NULL, src BLOB, is_dir INTEGER NOT NULL DEFAULT 0,
            tree INTEGER NOT NULL DEFAULT 0, tree_seq INTEGER NOT NULL DEFAULT 0,
            seq INTEGER NOT NULL DEFAULT 1, claimed INTEGER NOT NULL DEFAULT 0, wait_for INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL DEFAULT 0, last_error TEXT,
            first_seen REAL NOT NULL, event_time REAL NOT NULL, size INTEGER NOT NULL DEFAULT 0,
            UNIQUE (target, source, path));
        PRAGMA user_version = 1;""")
    db.execute("INSERT INTO shipped VALUES ('t', 'up', ?, 5, 77, 'etag')", (b"old.txt",))
    db.execute("INSERT INTO shipped VALUES ('t', 'up', ?, 0, 8, NULL)", (b"dir/",))
    db.execute("INSERT INTO ops (target, source, path, kind, first_seen, event_time) "
               "VALUES ('t', 'up', ?, 'put', 1, 1)", (b"pending.txt",))
    db.commit()
    db.close()


def test_a_version_1_database_is_migrated_in_place_and_keeps_its_rows(tmp_path, clock):
    path = tmp_path / "state" / "journal.db"
    make_v1(path)
    jr = Journal(path, {S: (T,)}, clock=clock)
    try:
        assert jr.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        cols = [r[1] for r in jr.db.execute("PRAGMA table_info(ops)")]
        assert "busy" in cols and "landed" in cols
        assert jr.db.execute("SELECT landed FROM ops").fetchall() == [(0,)]
        assert list(iter_shipped(jr.db, T, S)) == [(b"dir/", 0, 8, None, None),
                                                  (b"old.txt", 5, 77, "etag", None)]
        (op,) = jr.claim(T, 10, now=1e12)
        assert op.path == "pending.txt"
        jr.ack([Outcome(op, "put", size=1, mtime_ns=2, mode=0o644)])
        assert (b"pending.txt", 1, 2, None, 0o644) in list(iter_shipped(jr.db, T, S))
    finally:
        jr.close()
    again = Journal(path, {S: (T,)}, clock=clock)   # reopening a migrated file is a no-op
    try:
        assert len(list(iter_shipped(again.db, T, S))) == 3
    finally:
        again.close()


def test_a_newer_schema_is_still_refused(tmp_path, clock):
    path = tmp_path / "journal.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(JournalError, match="newer"):
        Journal(path, {S: (T,)}, clock=clock)
