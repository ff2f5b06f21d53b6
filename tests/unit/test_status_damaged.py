"""`mirrord status` on a state database that fails past its open, or that was removed
beside its write-ahead log: one message naming the file (JournalUnusable: exit 2), never a
traceback, never "no state database yet" (breaker J: a journal truncated to one page beside
a WAL passed the read-only open's probe and raised from read_holds)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mirrord.cli import status
from mirrord.errors import JournalUnusable
from mirrord.journal import Journal
from tests.unit.test_status_trash import _config


def test_a_page_that_fails_past_the_probe_is_a_clear_refusal(tmp_path, monkeypatch):
    cfg = _config(tmp_path)
    Journal(cfg.mirrord.journal_path, {"up": ("mirror",)}).close()

    def malformed(_db):
        raise sqlite3.DatabaseError("database disk image is malformed")
    monkeypatch.setattr(status, "read_holds", malformed)
    with pytest.raises(JournalUnusable, match="damaged"):
        status.collect(cfg)


def test_a_database_removed_beside_its_log_is_no_fresh_start(tmp_path):
    cfg = _config(tmp_path)
    path = cfg.mirrord.journal_path
    Journal(path, {"up": ("mirror",)}).close()
    Path(f"{path}-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\0" * 4092)
    path.unlink()
    with pytest.raises(JournalUnusable, match="missing while its write-ahead log"):
        status.collect(cfg)


def test_no_state_database_yet_still_lists_every_target_its_figures_unknown(tmp_path):
    """Before the daemon's first start, status printed the table's header and no row, as if
    no target were configured (a new user's report); --json had "targets": {}."""
    cfg = _config(tmp_path)
    doc = status.collect(cfg)
    t = doc["targets"]["mirror"]
    assert t["state"] == "unknown" and "no state database yet" in t["state_reason"]
    assert t["pending"] is None and t["shipped"] is None and t["last_reconcile"] is None
    text = status.render(doc)
    row = next(line for line in text.splitlines() if line.startswith("mirror "))
    assert row.split()[:7] == ["mirror", "unknown", "-", "-", "-", "-", "-"], row
    assert "unknown: no state database yet" in text


def test_a_target_row_has_the_same_keys_with_and_without_a_state_database(tmp_path):
    """The unknown row (status._FIGURES) and the row read from the journal (status._read)
    name their keys in two places: a key added to one only would be missing from the
    other's JSON."""
    cfg = _config(tmp_path)
    unknown = status.collect(cfg)["targets"]["mirror"]
    Journal(cfg.mirrord.journal_path, {"up": ("mirror",)}).close()
    read = status.collect(cfg)["targets"]["mirror"]
    assert set(unknown) == set(read), set(unknown) ^ set(read)
