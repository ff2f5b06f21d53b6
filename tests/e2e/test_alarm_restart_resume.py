"""The mass-change alarm through the real `mirrord run` process, around a stop (found by a
breaker, brkB):

- a resume made while the daemon is stopped let every delete made after it go out
  uncounted at the next start (the whole comparison counted nothing);
- a restart emptied the alarm window: 8 deletes live, a restart, 8 more while stopped
  (16 within seconds, alarm_deletes 10) and no alarm;
- `mirrord undelete --to-source` during a hold added held deletes of its own temp names
  and counted each restore three times; status counted held rows over every target.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

from mirrord import config as config_mod
from mirrord import targets as target_registry
from tests.e2e.helpers import Mirrord, wait_converged
from tests.e2e.test_alarm_daemon import poll


def _config(tmp: Path, *, window: str = "1m", second: bool = False) -> Path:
    (tmp / "src" / "x").mkdir(parents=True)
    for i in range(1, 41):
        (tmp / "src" / "x" / f"f{i}").write_text(f"x {i}\n")
    cfg = tmp / "mirrord.ini"
    targets = "local, local2" if second else "local"
    cfg.write_text(f"""
[mirrord]
state_dir = ./state
workers = 2
heartbeat_interval = 200ms

[source:uploads]
path = ./src
targets = {targets}
alarm_deletes = 10
alarm_window = {window}
pause_on_alarm = yes

[target:local]
type = local
path = ./mirror
keep_deleted = 1d

[target:local2]
type = local
path = ./mirror2
keep_deleted = 1d

[reconcile]
every = off
""")
    return cfg


def _run(tmp: Path, cfg: Path):
    daemon = Mirrord(cfg, tmp / "mirrord.log")
    target = target_registry.create(config_mod.load(cfg).targets["local"])
    target.open()
    return daemon, target


def _mirrored(tmp: Path) -> int:
    return len(list((tmp / "mirror" / "x").glob("f*")))


def _held(daemon: Mirrord) -> str:
    return daemon.cli("status").stdout


def test_deletes_made_after_a_resume_while_stopped_are_held(tmp_path):
    cfg = _config(tmp_path)
    src = tmp_path / "src"
    daemon, target = _run(tmp_path, cfg)
    try:
        daemon.start()
        wait_converged(src, target)
        for i in range(1, 12):                      # 11 > alarm_deletes: held
            (src / "x" / f"f{i}").unlink()
        poll("held", lambda: "deletes held" in _held(daemon), daemon)
        assert daemon.stop() == 0
        out = daemon.cli("resume-deletes", "--source", "uploads").stdout
        assert "go out now" in out
        for i in range(12, 36):                     # the broken script again: 24 deletes
            (src / "x" / f"f{i}").unlink()
        daemon.start()
        poll("the 24 held", lambda: "deletes held" in _held(daemon), daemon)
        time.sleep(2)
        left = {p.name for p in (tmp_path / "mirror" / "x").glob("f*")}
        assert len(left & {f"f{i}" for i in range(12, 36)}) >= 24 - 10, _held(daemon)
        # the resumed deletes waited for the start's comparison, whose hold took them too;
        # a second resume lets everything go
        daemon.cli("resume-deletes", "--source", "uploads")
        wait_converged(src, target)
        assert _mirrored(tmp_path) == 5
    finally:
        daemon.stop()
        target.close()


def test_the_alarm_window_spans_a_restart(tmp_path):
    cfg = _config(tmp_path)
    src = tmp_path / "src"
    daemon, target = _run(tmp_path, cfg)
    try:
        daemon.start()
        wait_converged(src, target)
        for i in range(1, 9):
            (src / "x" / f"f{i}").unlink()
        poll("8 shipped", lambda: _mirrored(tmp_path) == 32, daemon)
        assert daemon.stop() == 0
        for i in range(9, 17):
            (src / "x" / f"f{i}").unlink()
        daemon.start()
        poll("the alarm", lambda: "deletes held" in _held(daemon), daemon)
        assert "counts of the last run still in the window" in daemon.log.read_text()
        time.sleep(2)
        assert _mirrored(tmp_path) >= 32 - 2, _held(daemon)         # 16 > 10: at most 10 out
    finally:
        daemon.stop()
        target.close()


def _numbers(text: str) -> tuple[int, int, int]:
    """(alarm count, held deletes, targets named) from `mirrord status`."""
    alarm = re.search(r"alarm: (\d+) deletes or overwrites", text)
    held = re.search(r"(\d+) deletes held(?: on (\d+) targets)?", text)
    assert alarm and held, text
    return int(alarm.group(1)), int(held.group(1)), int(held.group(2) or 1)


def test_held_counts_and_restores_during_a_hold(tmp_path):
    cfg = _config(tmp_path, window="10m", second=True)
    src = tmp_path / "src"
    daemon, target = _run(tmp_path, cfg)
    try:
        daemon.start()
        wait_converged(src, target)
        poll("both targets", lambda: len(list((tmp_path / "mirror2" / "x").glob("f*"))) == 40,
             daemon)
        for i in range(1, 4):                       # 3 overwrites: their old bytes kept
            (src / "x" / f"f{i}").write_text(f"damaged {i}\n")
        poll("overwrites shipped",
             lambda: (tmp_path / "mirror" / "x" / "f3").read_text() == "damaged 3\n", daemon)
        for i in range(10, 15):                     # 5 deletes: they go out (kept)
            (src / "x" / f"f{i}").unlink()
        poll("5 deletes shipped", lambda: not (tmp_path / "mirror2" / "x" / "f14").exists()
             and not (tmp_path / "mirror" / "x" / "f14").exists(), daemon)
        for i in range(15, 31):                     # 16 more: the alarm fires, holds
            (src / "x" / f"f{i}").unlink()
        poll("held", lambda: "deletes held" in _held(daemon), daemon)
        time.sleep(1)
        count, held, targets = _numbers(_held(daemon))
        assert held <= 16 and targets == 2, _held(daemon)            # paths, not rows
        restored = [f"x/f{i}" for i in range(1, 4)]                   # over files targets hold
        gone = [f"x/f{i}" for i in range(10, 31) if not (tmp_path / "mirror" / "x" / f"f{i}").exists()]
        assert gone, "some deletes went out before the hold"
        # went out on local while held on local2 (the alarm fired between the two): the
        # restore replaces those held deletes (tests/e2e/test_alarm_counted_once.py)
        held_there = [p for p in gone if (tmp_path / "mirror2" / p).exists()]
        daemon.cli("undelete", "--to-source", "--force", "--target", "local", *restored, *gone)
        poll("restored shipped",
             lambda: (tmp_path / "mirror" / "x" / "f1").read_text() == "x 1\n", daemon)
        time.sleep(1)
        count2, held2, targets2 = _numbers(_held(daemon))
        assert count2 - count <= len(restored), (count, count2)      # one overwrite each at most
        assert held2 == held - len(held_there), (held_there, _held(daemon))
        db = sqlite3.connect(tmp_path / "state" / "journal.db")
        try:
            temp = db.execute("SELECT path FROM ops WHERE CAST(path AS TEXT) LIKE "
                              "'%.mirrord-undelete-%'").fetchall()
        finally:
            db.close()
        assert temp == []
        assert not list(src.rglob(".mirrord-undelete-*"))
        out = daemon.cli("resume-deletes", "--source", "uploads").stdout
        on = f" on {targets2} targets" if targets2 > 1 else ""        # as status said: paths
        assert f": {held2} held deletes{on} go out now" in out, out
    finally:
        daemon.stop()
        target.close()
