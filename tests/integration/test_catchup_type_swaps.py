"""The catch-up (mirrord.catchup) keeps back a repair that replaces an entry of the other
type while the source's deletes are held or its delete is capped, and sends it after the
delete otherwise (mirrord.type_swaps). On a real SQLite journal and a real source tree.

A review found the held case: the catch-up proposes its deletes and the journal holds
them, but a file's delete followed by a mkdir of its name is one plain mkdir row, which
a hold does not keep: the local target's mkdir replaced the held file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mirrord.catchup import catch_up
from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal, Outcome


def _shipped(j: Journal, *paths: str) -> None:
    """Record `paths` as shipped to 't' (a path ending in '/' as a directory)."""
    j.enqueue([Change("up", p.rstrip("/"), "mkdir" if p.endswith("/") else "put")
               for p in paths])
    while ops := j.claim("t", 100, now=1e12):   # a row below a directory's: once that is acked
        j.ack([Outcome(op, "mkdir" if op.kind == "mkdir" else "put", size=1, mtime_ns=1,
                       is_dir=op.kind == "mkdir") for op in ops])


def _run(tmp_path: Path, **kw) -> tuple[list[Change], object]:
    out: list[Change] = []
    src = SourceConfig("up", tmp_path / "src", ("t",))
    res = catch_up(tmp_path / "journal.db", src, ["t"], out.extend,
                   directories={"t": True}, **kw)
    return out, res


@pytest.fixture
def journal(tmp_path):
    (tmp_path / "src").mkdir()
    j = Journal(tmp_path / "journal.db", {"up": ("t",)})
    yield j
    j.close()


def test_a_directory_where_a_file_was_shipped_waits_while_the_source_is_held(tmp_path, journal):
    _shipped(journal, "thing", "top")
    (tmp_path / "src" / "top").write_text("t")
    (tmp_path / "src" / "thing").mkdir()
    (tmp_path / "src" / "thing" / "a").write_text("a")
    journal.hold_deletes("up", reason="test")
    out, res = _run(tmp_path)
    assert [(c.path, c.kind) for c in out] == [("top", "put"), ("thing", "delete")]
    assert res.withheld == 2            # mkdir thing, put thing/a
    journal.resume_deletes("up")
    out, res = _run(tmp_path)
    assert [(c.path, c.kind) for c in out] == [
        ("top", "put"), ("thing", "delete"), ("thing", "mkdir"), ("thing/a", "put")]
    assert res.withheld == 0


def test_a_file_where_a_directory_was_shipped_waits_for_a_capped_delete(tmp_path, journal):
    _shipped(journal, "big/", "big/sub/", "big/sub/f0", "big/sub/f1", "top")
    (tmp_path / "src" / "top").write_text("t")
    (tmp_path / "src" / "big").write_text("a file now")
    out, res = _run(tmp_path, cap=(2, None))
    assert [(c.path, c.kind) for c in out] == [("top", "put")]
    assert res.capped == ["t"] and res.withheld == 1
    out, res = _run(tmp_path)
    kinds = [(c.path, c.kind, c.tree) for c in out]
    assert kinds[-1] == ("big", "put", False) and ("big", "delete", True) in kinds[:-1]
    shutil.rmtree(tmp_path / "src")
