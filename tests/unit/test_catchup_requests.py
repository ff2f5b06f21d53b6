"""Catch-up requests while one runs (mirrord/daemon_scans.py, Scans.catch_up).

Found by a breaker: an inotify overflow that came while the first overflow's rescan was
walking queued nothing (one catch-up per source at a time), the walk had already passed
the directories the lost events were about, and status said in_sync with 212 files
missing on the local mirror and 161 on S3 until a reconcile pass, minutes later. Now a
request while a walk runs queues another; one while a walk of the same reason waits in
the queue is that one; the source shows a catch-up under way until its last walk ends.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirrord import daemon_scans
from mirrord.catchup import CatchUpResult
from mirrord.config import load
from mirrord.watched_through import WatchedThrough


def one_source(tmp_path: Path):
    """The config of source `up` -> local target `t` in tmp_path."""
    (tmp_path / "src").mkdir()
    ini = tmp_path / "m.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n[source:up]\npath = "
                   f"{tmp_path / 'src'}\ntargets = t\n[target:t]\ntype = local\npath = "
                   f"{tmp_path / 'mirror'}\n")
    ini.chmod(0o600)
    return load(ini)


@pytest.fixture
def scans(tmp_path: Path, monkeypatch):
    cfg = one_source(tmp_path)
    monkeypatch.setattr(daemon_scans, "catch_up_job", lambda _db, src, *, detail, **_kw: (
        lambda emit: ("catchup", src.name, detail, None)))
    done: list[str] = []
    d = SimpleNamespace(
        cfg=cfg, stop_requested=threading.Event(), catchups_pending=set(),
        scanner=SimpleNamespace(jobs=[], results=queue.Queue()),
        targets={"t": SimpleNamespace(features=SimpleNamespace(directories=True, keeps_mode=True))},
        alarms=SimpleNamespace(catch_up_done=done.append), _take_proposals=lambda: None,
        scan_hooks=[], set_state=lambda key, value: None, roots=SimpleNamespace(moved={}),
        watched=WatchedThrough(None))
    d.scanner.add = lambda name, job: d.scanner.jobs.append((name, job))
    s = daemon_scans.Scans(d)
    s.done = done
    return s


def run(s, index: int):
    """The scanner thread starts job `index`; its result waits for collect()."""
    name, job = s.d.scanner.jobs[index]
    s.d.scanner.results.put((name, ("catchup", "up", "x", CatchUpResult("up"))))
    return job(None)


def test_a_request_while_a_walk_runs_queues_another(scans):
    src = scans.d.cfg.source("up")
    scans.catch_up(src, reason="overflow")
    scans.catch_up(src, reason="overflow")          # the queued one covers it
    assert len(scans.d.scanner.jobs) == 1
    run(scans, 0)                                   # walking now
    scans.catch_up(src, reason="overflow")          # an overflow during the rescan
    assert len(scans.d.scanner.jobs) == 2
    scans.catch_up(src, reason="overflow")
    assert len(scans.d.scanner.jobs) == 2
    scans.collect()                                 # the first walk ends
    assert "up" in scans.d.catchups_pending and scans.done == []   # still catching up
    run(scans, 1)
    scans.collect()
    assert scans.d.catchups_pending == set() and scans.done == ["up"]


def test_a_request_of_another_reason_is_not_merged_into_a_waiting_one(scans):
    """The comparison a source's deletes wait for (daemon_roots: "start", "root-back")
    is told by its reason: it must run even when a walk of another reason waits."""
    src = scans.d.cfg.source("up")
    scans.catch_up(src, reason="overflow")
    scans.catch_up(src, reason="root-back")
    assert [name for name, _ in scans.d.scanner.jobs] == ["catchup:up", "catchup:up"]
    assert run(scans, 1)[2] == "root-back"


def test_only_walks_after_unread_changes_compare_ctimes_with_the_bound(tmp_path, monkeypatch):
    """mirrord.watched_through: at start, a root back, an overflow, a failed read or
    dropped changes, a file changed after the bound is put though size and mtime match;
    the links walk and a resume read nothing lost, and sending the latest live changes
    again counted twice on the targets (tests/e2e/test_links_walk_in_flight.py)."""
    cfg = one_source(tmp_path)
    seen: dict[str, object] = {}
    monkeypatch.setattr(daemon_scans, "catch_up_job", lambda _db, src, *, detail, **kw: (
        seen.__setitem__(detail, kw["changed_after_ns"]) or (lambda emit: None)))
    d = SimpleNamespace(
        cfg=cfg, stop_requested=threading.Event(), catchups_pending=set(),
        scanner=SimpleNamespace(add=lambda name, job: None),
        targets={"t": SimpleNamespace(features=SimpleNamespace(directories=True, keeps_mode=True))},
        roots=SimpleNamespace(moved={}), watched=WatchedThrough({"up": 42}))
    s = daemon_scans.Scans(d)
    for reason in ("start", "root-back", "overflow", "cycle-error", "journal-recovered",
                   "links", "resumed"):
        s.catch_up(cfg.source("up"), reason=reason)
    assert seen == {"start": 42, "root-back": 42, "overflow": 42, "cycle-error": 42,
                    "journal-recovered": 42, "links": None, "resumed": None}
