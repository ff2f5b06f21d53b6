"""`mirrord reconcile` while a mass-change alarm holds a source's deletes.

Before, the pass proposed its deletes anyway: the journal parked them (held until
`mirrord resume-deletes`) and the command waited for them for ever (no daemon: no
limit; the hourly timer unit ran until its TimeoutStartSec), the daemon's own passes
until their timeout. Now the pass refuses its deletes with a line saying why, exits 1
at once, and the next pass after resume-deletes deletes them.
"""

from __future__ import annotations

import json
import time

from mirrord import journal
from mirrord.journal.holds import hold
from tests.e2e.test_reconcile_cli import files, mirrord, write_config


def test_held_deletes_are_refused_not_waited_for(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a").write_bytes(b"alpha")
    ini = write_config(tmp_path)
    assert mirrord(ini, "reconcile").returncode == 0            # the journal exists now
    conn = journal.connect(tmp_path / "state/journal.db")
    try:
        assert hold(conn, "up", since=time.time(), reason="a test alarm")
    finally:
        conn.close()
    (tmp_path / "mirror/stray").write_bytes(b"deleted at the source")
    (tmp_path / "src/b").write_bytes(b"bravo")                    # repairs still go
    res = mirrord(ini, "reconcile", "--json")                      # bounded: 120 s
    assert res.returncode == 1, res.stdout + res.stderr
    t = json.loads(res.stdout)["targets"]["mirror"]
    assert t["deleted"] == 0 and t["refused_deletes"] == 1 and not t["errors"], t
    assert "are held (a test alarm; mirrord resume-deletes" in t["delete_refusal"][0], t
    assert files(tmp_path / "mirror") == {"a": b"alpha", "b": b"bravo", "stray": b"deleted at the source"}
    assert mirrord(ini, "resume-deletes").returncode == 0
    res = mirrord(ini, "reconcile")
    assert res.returncode == 0, res.stdout + res.stderr
    assert files(tmp_path / "mirror") == files(tmp_path / "src")


def test_a_queued_put_whose_file_is_gone_is_not_run_as_a_delete_while_held(tmp_path):
    """A put left queued (a stopped run, a daemon stopped during an alarm) whose file was
    deleted since runs as a delete when a worker finds it gone. The daemon's workers hold
    that delete while the alarm holds the source; the command's own workers did not, and
    deleted the file on the target during the hold."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a").write_bytes(b"alpha")
    (tmp_path / "src/b").write_bytes(b"bravo")
    ini = write_config(tmp_path)
    assert mirrord(ini, "reconcile").returncode == 0
    j = journal.Journal(tmp_path / "state/journal.db", {"up": ("mirror",)})
    try:
        j.enqueue([journal.Change("up", "b", "put", time=time.time())])
        assert hold(j.db, "up", since=time.time(), reason="a test alarm")
    finally:
        j.close()
    (tmp_path / "src/b").unlink()                                 # the mass delete
    (tmp_path / "src/c").write_bytes(b"charlie")                  # a repair the pass waits for
    res = mirrord(ini, "reconcile", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    assert files(tmp_path / "mirror") == {"a": b"alpha", "b": b"bravo", "c": b"charlie"}


def test_a_dry_run_says_which_deletes_the_hold_would_refuse(tmp_path):
    """The dry run printed 'differs' (as if a real run would bring the target in sync) and
    listed no delete, while the real run refused them and said 'NOT in sync'. Now it says
    what the real run would: the deletes it would refuse, why, and NOT in sync; exit 1."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a").write_bytes(b"alpha")
    ini = write_config(tmp_path)
    assert mirrord(ini, "reconcile").returncode == 0
    conn = journal.connect(tmp_path / "state/journal.db")
    try:
        assert hold(conn, "up", since=time.time(), reason="a test alarm")
    finally:
        conn.close()
    (tmp_path / "mirror/stray").write_bytes(b"deleted at the source")
    (tmp_path / "mirror/old").mkdir()
    (tmp_path / "mirror/old/x").write_bytes(b"x")
    res = mirrord(ini, "reconcile", "--dry-run")
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert "would refuse to delete mirror: old/" in lines, res.stdout
    assert "would refuse to delete mirror: stray" in lines, res.stdout
    assert not any(line.startswith("would delete") for line in lines), res.stdout
    row = next(line for line in lines if line.startswith("mirror "))
    assert row.endswith("NOT in sync"), res.stdout
    assert any("are held (a test alarm; mirrord resume-deletes" in line for line in lines), res.stdout
    res = mirrord(ini, "reconcile", "--dry-run", "--json")
    assert res.returncode == 1
    t = json.loads(res.stdout)["targets"]["mirror"]
    assert t["would_refuse"] == ["old/", "stray"] and t["would_delete"] == [], t
    assert t["refused_deletes"] == 3 and "are held (a test alarm; mirrord resume-deletes" in t["delete_refusal"][0]
    assert files(tmp_path / "mirror") == {"a": b"alpha", "stray": b"deleted at the source",
                                          "old/x": b"x"}
