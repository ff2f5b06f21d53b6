"""source_record: what `undelete --to-source` wrote while no daemon runs is queued in the
journal as a 'put' for every target of its source, because the daemon's start-up
catch-up compares size and mtime only, and a restored version of the size and mtime of
the file it replaced looked shipped (the real daemon and targets:
tests/e2e/test_keep_shapes.py, 'while stopped')."""

from __future__ import annotations

import pytest

from mirrord import journal, locks
from mirrord.config import load
from mirrord.journal import Journal
from mirrord.trash.source_record import record_written


@pytest.fixture
def cfg(tmp_path):
    ini = tmp_path / "m.ini"
    ini.write_text(f"""
[mirrord]
state_dir = {tmp_path / 'state'}
[source:up]
path = {tmp_path / 'src'}
targets = a, b
[target:a]
type = local
path = {tmp_path / 'a'}
[target:b]
type = local
path = {tmp_path / 'b'}
""")
    (tmp_path / "src").mkdir()
    return load(ini)


def _journal(cfg) -> None:
    Journal(cfg.mirrord.journal_path, {"up": ("a", "b")}).close()


def _rows(cfg) -> list[tuple]:
    db = journal.connect(cfg.mirrord.journal_path, readonly=True)
    try:
        return sorted(db.execute("SELECT target, source, CAST(path AS TEXT), kind FROM ops"))
    finally:
        db.close()


def test_written_files_are_queued_for_every_target_of_the_source(cfg):
    _journal(cfg)
    assert record_written(cfg, [("up", "d/x.doc", 14), ("up", "y", 0)]) is None
    assert _rows(cfg) == [("a", "up", "d/x.doc", "put"), ("a", "up", "y", "put"),
                          ("b", "up", "d/x.doc", "put"), ("b", "up", "y", "put")]


def test_nothing_is_queued_while_a_daemon_runs(cfg):
    """Its watcher sees the restore's rename and records it itself."""
    _journal(cfg)
    with locks.take(cfg.mirrord.state_dir, locks.DAEMON):
        assert record_written(cfg, [("up", "x", 1)]) is None
    assert _rows(cfg) == []


def test_no_state_database_is_made(cfg):
    """A daemon never started ships the whole tree at its first start."""
    assert record_written(cfg, [("up", "x", 1)]) is None
    assert not cfg.mirrord.journal_path.exists()


def test_a_journal_that_cannot_be_written_is_one_message(cfg):
    _journal(cfg)
    cfg.mirrord.journal_path.write_bytes(b"not a database" * 100)
    why = record_written(cfg, [("up", "x", 1)])
    assert why is not None and "reconcile --checksum" in why
    assert str(cfg.mirrord.journal_path) in why
