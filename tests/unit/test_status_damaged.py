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
