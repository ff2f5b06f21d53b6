"""The real `mirrord` process on a state database it cannot use as it stands: one line, exit 2.

Shapes a breaker found: `status` on a read-only state directory (a read-only bind mount
of a healthy one) was a traceback ("unable to open database file"); `resume-deletes`
there called the database damaged and advised moving it aside (losing the record of
what was shipped); a journal.db that is not a database, or is a directory, gave
`status` and `run` tracebacks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

MIRRORD = Path(sys.executable).with_name("mirrord")


def _run(ini: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(MIRRORD), "-c", str(ini), *args], check=False,
                          capture_output=True, text=True, timeout=timeout)


def _setup(tmp: Path, state: Path) -> Path:
    (tmp / "src").mkdir(exist_ok=True)
    (tmp / "src" / "f").write_text("x")
    ini = tmp / f"{state.name}.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {state}\n[source:s]\npath = {tmp / 'src'}\n"
                   f"targets = t\n[target:t]\ntype = local\npath = {tmp / 'dst'}\n")
    return ini


def _one_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("mirrord:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_status_works_on_a_read_only_state_dir(tmp_path):
    state, ro = tmp_path / "state", tmp_path / "ro"
    ini = _setup(tmp_path, state)
    assert _run(_setup(tmp_path, state), "reconcile").returncode == 0   # a healthy database
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("journal")) == ["journal.db"]
    ro.mkdir()
    ro_ini = _setup(tmp_path, ro)
    subprocess.run(["mount", "--bind", "-o", "ro", str(state), str(ro)], check=True)
    try:
        text = _run(ro_ini, "status")
        assert text.returncode == 0 and "Traceback" not in text.stderr, text.stderr
        assert "compared 1" in text.stdout, text.stdout        # the last reconcile, read
        doc = _run(ro_ini, "status", "--json")
        assert doc.returncode == 0, doc.stderr
        assert json.loads(doc.stdout)["targets"]["t"]["shipped"] == 1
        resume = _run(ro_ini, "resume-deletes")
        assert resume.returncode == 2, resume.stdout + resume.stderr
        line = _one_line(resume)
        assert "damaged" not in line.lower() and "not writable" in line and str(ro / "journal.db") in line
        assert "do not move it aside" in line
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    # status on the writable directory leaves no -wal/-shm behind where there were none
    assert _run(ini, "status").returncode == 0
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("journal")) == ["journal.db"]


@pytest.mark.parametrize("shape", ["garbage", "directory", "emptied", "missing"])
def test_an_unusable_journal_is_one_line_and_exit_2(tmp_path, shape):
    """Every command alike, `reconcile --dry-run` too (it read the database once per
    target and reported each failure as that target's error: exit 1, a breaker). The
    last two shapes: journal.db 0 bytes or gone beside a write-ahead log that holds
    data (truncated, not new: opening.emptied_with_log)."""
    state = tmp_path / "state"
    state.mkdir()
    db = state / "journal.db"
    wal = state / "journal.db-wal"
    if shape == "garbage":
        db.write_bytes(b"this is not a database\n" * 500)
        expected = "is damaged (file is not a database)"
    elif shape == "directory":
        db.mkdir()
        expected = "is a directory, not a database file; move it aside"
    else:
        if shape == "emptied":
            db.write_bytes(b"")
        wal.write_bytes(b"frames of a log\n" * 64)
        expected = "write-ahead log"
    ini = _setup(tmp_path, state)
    for args in (("status",), ("status", "--json"), ("run",), ("resume-deletes",),
                 ("reconcile",), ("reconcile", "--dry-run")):
        proc = _run(ini, *args, timeout=60)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        line = _one_line(proc)
        assert str(db) in line and expected in line, (args, line)
    if shape == "garbage":
        assert db.read_bytes() == b"this is not a database\n" * 500   # never replaced
    elif shape == "directory":
        assert db.is_dir() and not any(db.iterdir())
    else:
        assert wal.read_bytes() == b"frames of a log\n" * 64
        assert db.read_bytes() == b"" if shape == "emptied" else not db.exists()


def test_an_empty_or_foreign_state_database_is_one_line_and_left_alone(tmp_path):
    """A 0-byte journal.db, or another program's SQLite file in its place (a breaker):
    `status` failed with a traceback ('no such table: ops'), and `run` / `reconcile`
    added mirrord's tables to the foreign file. Now one line, exit 2; the foreign file is
    never written; an empty one is a new state database to a writer."""
    import sqlite3
    import subprocess
    import sys
    mirrord = Path(sys.executable).with_name("mirrord")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.jpg").write_text("a")
    state = tmp_path / "state"
    state.mkdir()
    cfg = tmp_path / "m.ini"
    cfg.write_text(f"[mirrord]\nstate_dir = {state}\n[source:up]\npath = {tmp_path / 'src'}\n"
                   f"targets = t\n[target:t]\ntype = local\npath = {tmp_path / 'tgt'}\n"
                   "[reconcile]\nat_start = no\n")
    db = state / "journal.db"

    def run(*args):
        return subprocess.run([str(mirrord), "-c", str(cfg), *args], capture_output=True,
                              text=True, timeout=120)

    db.write_bytes(b"")
    for args in (("status",), ("status", "--json")):
        out = run(*args)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "is empty" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert run("reconcile").returncode == 0          # a writer starts it: a new database
    assert run("status").returncode == 0
    db.unlink()
    foreign = sqlite3.connect(db)
    foreign.execute("CREATE TABLE foo (x)")
    foreign.commit()
    foreign.close()
    before = db.read_bytes()
    for args in (("status",), ("reconcile",), ("run",), ("resume-deletes",)):
        out = run(*args)
        assert out.returncode == 2 and "Traceback" not in out.stderr, (args, out.stderr)
        assert "not a mirrord state database" in out.stderr, (args, out.stderr)
    assert db.read_bytes() == before
