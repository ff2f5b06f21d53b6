"""`mirrord reconcile` and the daemon ship through one Pipeline: the drift between the two
copies of the loop is gone (issue 14). In-process runs of the real command on a real
source tree, a local target and a real journal."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from mirrord import config as config_mod
from mirrord.cli import status
from mirrord.cli.main import main
from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper
from mirrord.targets.local import LocalTarget


@pytest.fixture
def site(tmp_path: Path) -> Path:
    for rel, data in {"a.txt": b"alpha", "d/b.txt": b"bravo", "d/e/c.txt": b"charlie"}.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_bytes(data)
    (tmp_path / "mirrord.ini").write_text(
        f"[mirrord]\nstate_dir = {tmp_path / 'state'}\nlog_level = warning\n\n"
        f"[source:up]\npath = {tmp_path / 'src'}\ntargets = mirror\n\n"
        f"[target:mirror]\ntype = local\npath = {tmp_path / 'mirror'}\nfsync = no\n\n"
        f"[reconcile]\ndelete = yes\n")
    return tmp_path


def reconcile(site: Path, *args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["-c", str(site / "mirrord.ini"), "reconcile", "--json", *args])
    return rc, json.loads(out.getvalue())


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".mirrord" not in p.parts}


def test_a_dry_run_is_in_sync_only_when_nothing_differs(site):
    rc, doc = reconcile(site, "--dry-run")
    assert rc == 1 and doc["in_sync"] is False
    # a dry run only looks (Target.open(readonly=True)): a mirror root not made yet is
    # said, not made, so nothing is listed as would_send until a real run made it
    assert doc["targets"]["mirror"]["in_sync"] is False
    assert "does not exist" in " ".join(doc["targets"]["mirror"]["errors"]), doc
    assert reconcile(site)[0] == 0
    (site / "src" / "later.jpg").write_bytes(b"a file the mirror does not hold yet")
    rc, doc = reconcile(site, "--dry-run")
    assert rc == 1 and doc["targets"]["mirror"]["would_send"] == ["later.jpg"], doc
    assert reconcile(site)[0] == 0
    rc, doc = reconcile(site, "--dry-run")
    assert rc == 0 and doc["in_sync"] is True and doc["targets"]["mirror"]["would_send"] == []
    (site / "mirror/stray").write_bytes(b"x")
    rc, doc = reconcile(site, "--dry-run")     # a delete to do: not in sync either
    assert rc == 1 and doc["targets"]["mirror"]["would_delete"] == ["stray"]
    rc, doc = reconcile(site, "--dry-run", "--no-delete")   # kept on purpose: in sync
    assert rc == 0 and doc["targets"]["mirror"]["kept_extra"] == 1


def test_a_journal_write_error_is_held_and_retried_not_raised(site, monkeypatch):
    real = Journal.enqueue
    fails = [sqlite3.OperationalError("database or disk is full")] * 2

    def enqueue(self, changes):
        if fails:
            raise fails.pop()
        return real(self, changes)

    monkeypatch.setattr(Journal, "enqueue", enqueue)
    rc, doc = reconcile(site)
    assert not fails, "the journal was never asked"
    assert rc == 0, doc
    assert doc["targets"]["mirror"]["missing"] == 5
    assert files(site / "mirror") == files(site / "src")


def test_an_outcome_asking_for_a_rescan_is_honoured(site, monkeypatch):
    """A tree delete left in the journal (a daemon stopped before shipping it) finds a
    directory at the source again: the directory's contents must be sent again. The
    leftover row ships only once the pass has listed the target (which then still held
    d/ in full, so the pass itself proposes nothing below d)."""
    assert reconcile(site)[0] == 0
    (site / "src/new.txt").write_bytes(b"one repair for the pass to wait for")
    journal = Journal(site / "state/journal.db", {"up": ("mirror",)})
    journal.enqueue([Change("up", "d", "delete", tree=True)])
    journal.close()
    listed = threading.Event()
    real_list, real_take = LocalTarget.list, Shipper.take_work

    def list_then_release(self, prefix=""):
        yield from real_list(self, prefix)
        listed.set()

    def take_work_once_listed(self, journal, target):
        if listed.is_set():
            real_take(self, journal, target)

    monkeypatch.setattr(LocalTarget, "list", list_then_release)
    monkeypatch.setattr(Shipper, "take_work", take_work_once_listed)
    rc, doc = reconcile(site)
    assert rc == 0, doc
    assert files(site / "mirror") == files(site / "src")


def test_status_shows_the_counts_of_a_pass_run_by_the_command(site):
    shutil.rmtree(site / "mirror", ignore_errors=True)
    assert reconcile(site)[0] == 0
    cfg = config_mod.load(site / "mirrord.ini")
    doc = status.collect(cfg)
    rec = doc["targets"]["mirror"]["last_reconcile"]
    assert rec["reason"] == "command" and rec["missing"] == 5 and rec["delete_refusal"] == []
    text = status.render(doc)
    line = next(ln for ln in text.splitlines() if "last reconcile" in ln)
    assert "compared 3" in line and "missing 5" in line, text


def test_repairs_that_failed_block_the_deletes_of_the_pass(site):
    assert reconcile(site)[0] == 0
    (site / "mirror/stray").write_bytes(b"not at the source")
    (site / "src/open.txt").write_bytes(b"being written")
    writer = open(site / "src/open.txt", "ab")   # noqa: SIM115 - held open on purpose
    try:
        rc, doc = reconcile(site)
    finally:
        writer.close()
    t = doc["targets"]["mirror"]
    assert rc == 1 and t["deleted"] == 0 and t["refused_deletes"] == 1
    assert "repairs failed" in t["delete_refusal"][0]
    assert any("open for writing" in e for e in t["errors"])
    assert (site / "mirror/stray").exists()
    assert os.path.exists(site / "mirror/a.txt")
