"""The daemon's scheduled reconcile passes keep the same safety rules and write the same
summary as `mirrord reconcile` (issue 14): deletes only after the pass's repairs
succeeded. The real Daemon in-process (a thread), the default watcher, a local target."""

from __future__ import annotations

from pathlib import Path

from mirrord.cli import status
from mirrord.journal import connect, read_state
from tests.integration.test_daemon_cycle import Running, make_daemon
from tests.reliability.conftest import poll


def last_pass(tmp_path: Path) -> dict | None:
    db_path = tmp_path / "state" / "journal.db"
    if not db_path.exists():
        return None
    db = connect(db_path, readonly=True)
    try:
        return read_state(db, "reconcile:local")
    finally:
        db.close()


def test_a_scheduled_pass_whose_repairs_failed_deletes_nothing(tmp_path):
    daemon = make_daemon(tmp_path, reconcile="delete = yes\n")
    (tmp_path / "src" / "a.txt").write_bytes(b"alpha")
    (tmp_path / "src" / "open.txt").write_bytes(b"being written")
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "stray").write_bytes(b"not at the source")
    writer = open(tmp_path / "src" / "open.txt", "ab")   # noqa: SIM115 - held open on purpose
    try:
        with Running(daemon):
            rec = poll(lambda: (last_pass(tmp_path) or {}).get("delete_refusal"),
                       what="a pass that refused its deletes", timeout=90)
            assert "repairs failed" in rec[0]
            assert (tmp_path / "mirror" / "stray").exists()
            doc = last_pass(tmp_path)
            assert doc["refused_deletes"] == 1 and doc["deleted"] == 0 and not doc["in_sync"]
            assert any("open for writing" in e for e in doc["errors"])
            text = status.render(status.collect(daemon.cfg))
            assert "waiting for writers" in text, text
            line = next(ln for ln in text.splitlines() if "last reconcile" in ln)
            assert "compared 2" in line and "refused_deletes 1" in line, text
    finally:
        writer.close()


def test_a_scheduled_pass_deletes_once_its_repairs_are_done(tmp_path):
    daemon = make_daemon(tmp_path, reconcile="delete = yes\n")
    (tmp_path / "src" / "a.txt").write_bytes(b"alpha")
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "stray").write_bytes(b"not at the source")
    with Running(daemon):
        poll(lambda: not (tmp_path / "mirror" / "stray").exists(), what="the stray deleted")
        assert (tmp_path / "mirror" / "a.txt").read_bytes() == b"alpha"
        poll(lambda: (last_pass(tmp_path) or {}).get("in_sync"), what="a pass in sync")
