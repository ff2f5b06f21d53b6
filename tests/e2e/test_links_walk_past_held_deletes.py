"""The walk that finds a hard-linked file's other names, and so the write through a new
link, does not wait for another source's deletes held by the mass-change alarm
(Journal.has_more_ops_than leaves them out: they wait for `resume-deletes`).

Found by a review (helper-137): with more than 100 deletes held on one source (the
backlog a walk waits below), `ln p1 p2; echo b >> p2` on another source never reached
p1 on the target, and its targets stayed `catching_up`, until an operator resumed the
first source's deletes. Both watcher backends, the real daemon, a local target."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord import config as config_mod
from mirrord import targets as target_registry
from tests.e2e.helpers import Mirrord, source_files, target_files
from tests.e2e.test_alarm_daemon import poll

HELD = 150   # above the backlog a walk waits below (daemon_events.BACKLOG_LIMIT, 100)


def mirrored(tmp: Path, target) -> dict[str, bytes]:
    """What the target should hold: up/ from src, other/ from other."""
    want = {f"up/{k}": v for k, v in source_files(tmp / "src").items()}
    return want | {f"other/{k}": v for k, v in source_files(tmp / "other").items()}


@pytest.fixture(params=["inotify", "fanotify"])
def setup(request, tmp_path: Path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "p1").write_bytes(b"a\n")
    (tmp_path / "other").mkdir()
    for i in range(HELD):
        (tmp_path / "other" / f"d{i}.jpg").write_bytes(b"x%d" % i)
    cfg = tmp_path / "mirrord.ini"
    cfg.write_text(
        "[mirrord]\nstate_dir = ./state\nheartbeat_interval = 200ms\n\n"
        f"[source:uploads]\npath = ./src\ntargets = local\ndest = up\nwatcher = {request.param}\n\n"
        f"[source:other]\npath = ./other\ntargets = local\ndest = other\n"
        f"watcher = {request.param}\nalarm_deletes = 5\nalarm_window = 10m\n"
        "pause_on_alarm = yes\n\n"
        "[target:local]\ntype = local\npath = ./mirror\n\n[reconcile]\nevery = off\n")
    daemon = Mirrord(cfg, tmp_path / "mirrord.log")
    target = target_registry.create(config_mod.load(cfg).targets["local"])
    target.open()
    try:
        daemon.start()
        poll("first sync", lambda: target_files(target) == mirrored(tmp_path, target), daemon)
        yield tmp_path, daemon, target
    finally:
        daemon.stop()
        target.close()


def test_a_write_through_a_new_link_is_not_held_by_another_sources_held_deletes(setup):
    tmp, daemon, target = setup
    for i in range(HELD):
        (tmp / "other" / f"d{i}.jpg").unlink()
    poll("the other source's deletes held", lambda: daemon.status()["sources"]["other"].get(
        "alarm") == "alarm", daemon)
    os.link(tmp / "src" / "p1", tmp / "src" / "p2")
    with open(tmp / "src" / "p2", "ab") as f:
        f.write(b"b\n")
    poll("p1 on the target", lambda: target.read("up/p1") == b"a\nb\n", daemon, timeout=90)
    assert target.read("up/p2") == b"a\nb\n"
    held = [k for k in target_files(target) if k.startswith("other/")]
    assert len(held) > 100, "the deletes were not held"   # the first ones may run
