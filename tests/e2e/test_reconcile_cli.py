"""The real `mirrord reconcile` process: flags, exit codes, output, the daemon hand-off."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.e2e.helpers import MIRRORD, Mirrord

ROOT = Path(__file__).resolve().parents[2]


def write_config(base: Path, *, mirror: Path | None = None, extra: str = "") -> Path:
    ini = base / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {base / 'state'}\nheartbeat_interval = 1s\n\n"
                   f"[source:up]\npath = {base / 'src'}\ntargets = mirror\n\n"
                   f"[target:mirror]\ntype = local\npath = {mirror or base / 'mirror'}\n"
                   f"fsync = no\n{extra}")
    return ini


def tree(base: Path) -> None:
    for rel, data in {"a.txt": b"alpha", "d/b.txt": b"bravo", "d/e/c.txt": b"charlie"}.items():
        (base / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / "src" / rel).write_bytes(data)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".mirrord" not in p.parts}


def mirrord(ini: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([MIRRORD, "-c", str(ini), *args], capture_output=True, text=True,
                          timeout=120, **kw)


@pytest.fixture
def site(tmp_path) -> Path:
    tree(tmp_path)
    write_config(tmp_path)
    return tmp_path


def test_usage_errors_exit_2_and_name_the_key(site):
    res = mirrord(site / "mirrord.ini", "reconcile", "--target", "nope")
    assert res.returncode == 2
    assert "--target nope" in res.stderr and "[target:nope]" in res.stderr
    assert "Traceback" not in res.stderr
    res = mirrord(site / "mirrord.ini", "reconcile", "--delete", "--no-delete")
    assert res.returncode == 2


def test_dry_run_prints_the_plan_and_changes_nothing(site):
    (site / "mirror/old").mkdir(parents=True)
    (site / "mirror/old/x").write_bytes(b"x")
    res = mirrord(site / "mirrord.ini", "reconcile", "--dry-run")
    assert res.returncode == 1, res.stderr       # not in sync: there is work to do
    assert "would send mirror: a.txt" in res.stdout
    assert "would send mirror: d/e/c.txt" in res.stdout
    assert "would delete mirror: old/" in res.stdout
    assert files(site / "mirror") == {"old/x": b"x"}
    assert not (site / "state/journal.db").exists()
    res = mirrord(site / "mirrord.ini", "reconcile", "--dry-run", "--json")
    doc = json.loads(res.stdout)
    assert doc["dry_run"] is True and doc["in_sync"] is False and res.returncode == 1
    t = doc["targets"]["mirror"]
    assert (t["missing"], t["extra"], t["deleted"]) == (5, 2, 2)
    assert "a.txt" in t["would_send"] and t["would_delete"] == ["old/"]


def test_a_reader_that_leaves_is_no_failure_of_the_pass(site):
    """`reconcile --dry-run | head -1` (or a real run): the EPIPE of the second plan line
    was taken for a failed listing of the target, its deletes refused, exit 1 for that
    (a breaker). The output is dropped, said once on stderr, and the pass goes on."""
    (site / "mirror/old").mkdir(parents=True)
    (site / "mirror/old/x").write_bytes(b"x")
    for args in (("reconcile", "--dry-run"), ("reconcile",)):
        proc = subprocess.Popen([MIRRORD, "-c", str(site / "mirrord.ini"), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = proc.stdout.readline()
        proc.stdout.close()                      # the reader left after one line
        err = proc.stderr.read().decode()
        proc.wait(timeout=120)
        assert first, err
        assert "listing failed" not in err and "deletes refused" not in err, err
        assert "Traceback" not in err, err
    assert files(site / "mirror") == {"a.txt": b"alpha", "d/b.txt": b"bravo",
                                      "d/e/c.txt": b"charlie"}   # the real run did it all


def test_repair_summary_json_and_status_record(site):
    res = mirrord(site / "mirrord.ini", "reconcile")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines()[0].split()[:4] == ["target", "compared", "missing", "changed"]
    assert "in sync" in res.stdout
    assert files(site / "mirror") == files(site / "src")
    (site / "src/a.txt").write_bytes(b"ALPHA!")
    res = mirrord(site / "mirrord.ini", "reconcile", "--json", "--target", "mirror")
    doc = json.loads(res.stdout)
    assert res.returncode == 0 and doc["in_sync"] is True
    t = doc["targets"]["mirror"]
    assert (t["compared"], t["changed"], t["bytes"]) == (3, 1, 6)
    assert res.stderr.count("\r") == 0                 # no progress bar off a terminal
    with sqlite3.connect(site / "state/journal.db") as db:
        row = db.execute("SELECT value FROM kv WHERE key = 'reconcile:mirror'").fetchone()
    state = json.loads(row[0])
    assert state["changed"] == 1 and state["in_sync"] is True and state["at"] > 0
    assert state["reason"] == "command" and state["finished_at"] >= state["at"]


def test_unrepairable_target_exits_1(site):
    (site / "blocker").write_bytes(b"a file where the mirror directory should be")
    ini = write_config(site, mirror=site / "blocker")
    res = mirrord(ini, "reconcile", "--json")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["in_sync"] is False and "cannot open target" in doc["targets"]["mirror"]["errors"][0]


def test_unreadable_source_directory_blocks_deletes_for_an_unprivileged_user():
    """Run as nobody (root reads everything): a mode-000 directory cannot be listed, and the
    files mirrored from it must not be deleted from the target."""
    base = Path(tempfile.mkdtemp(prefix="mirrord-e2e-unreadable-"))
    try:
        os.chmod(base, 0o755)
        tree(base)
        (base / "mirror").mkdir()
        subprocess.run(["cp", "-a", f"{base / 'src'}/.", str(base / "mirror")], check=True)
        (base / "mirror/stray").write_bytes(b"x")
        os.chmod(base / "src/d", 0)
        ini = write_config(base)
        # One dry run as root first loads every module lazily imported (the interpreter's
        # own library lives under /root, which nobody cannot read); then drop to nobody.
        code = ("import contextlib, io, os, sys\n"
                "from mirrord.cli.main import main\n"
                "with contextlib.redirect_stdout(io.StringIO()), "
                "contextlib.redirect_stderr(io.StringIO()):\n"
                "    main(sys.argv[1:])\n"
                "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
                "sys.exit(main(sys.argv[1:]))\n")
        res = subprocess.run([sys.executable, "-c", code, "-c", str(ini), "reconcile", "--dry-run"],
                             capture_output=True, text=True, timeout=60, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert res.returncode == 1, res.stdout + res.stderr
        assert "could not be read" in res.stdout
        assert "would delete" not in res.stdout
        assert files(base / "mirror")["d/e/c.txt"] == b"charlie"
    finally:
        os.chmod(base / "src/d", 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_with_a_running_daemon_it_only_enqueues_and_waits(site):
    (site / "mirror").mkdir()
    daemon = Mirrord(site / "mirrord.ini", site / "daemon.log").start()
    try:
        # let the daemon's own start-up catch-up finish, then damage the mirror behind its back
        import time

        deadline = time.monotonic() + 60
        while files(site / "mirror") != files(site / "src"):
            assert time.monotonic() < deadline, daemon.log.read_text()
            time.sleep(0.1)
        (site / "mirror/a.txt").unlink()
        (site / "mirror/d/b.txt").write_bytes(b"damaged")
        (site / "mirror/stray").write_bytes(b"x")
        res = mirrord(site / "mirrord.ini", "reconcile", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "a daemon is running" in res.stderr
        t = json.loads(res.stdout)["targets"]["mirror"]
        assert (t["missing"], t["changed"], t["extra"], t["deleted"]) == (1, 1, 1, 1)
        assert files(site / "mirror") == files(site / "src")
    finally:
        daemon.stop()
