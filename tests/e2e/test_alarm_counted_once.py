"""A version a target holds counts once in the mass-change alarm, through the real
`mirrord run` process: deletes shipped on one target while the other target's worker was
busy, the alarm fires and holds them there, and `mirrord undelete --to-source` brings the
files back. Each restore is a new file on the first target and, on the second, a write
over the copy its held delete was to take away: that copy was counted by the delete.
Before, each restore counted one overwrite more (a CI run of
tests/e2e/test_alarm_restart_resume.py hit this shape by timing: 28 for 24 + 3).
The cases below the journal and the batch are in tests/unit/test_alarm_counted_once.py.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.helpers import wait_converged
from tests.e2e.test_alarm_daemon import poll
from tests.e2e.test_alarm_restart_resume import _config as _base_config, _held, _numbers, _run


def _config(tmp: Path) -> Path:
    """Two local targets, 40 files, alarm_deletes 10 with pause on; local2 with one worker."""
    cfg = _base_config(tmp, window="10m", second=True)
    cfg.write_text(cfg.read_text().replace("path = ./mirror2\n", "path = ./mirror2\nworkers = 1\n"))
    assert "workers = 1" in cfg.read_text()
    return cfg


def test_restores_over_copies_a_held_delete_was_to_take_are_not_counted_again(tmp_path):
    cfg = _config(tmp_path)
    src, mirror, mirror2 = tmp_path / "src", tmp_path / "mirror", tmp_path / "mirror2"
    faults = tmp_path / "faults"
    faults.mkdir()
    daemon, target = _run(tmp_path, cfg)
    daemon.env = {"MIRRORD_FAULT_DIR": str(faults)}
    try:
        daemon.start()
        wait_converged(src, target)
        poll("both targets", lambda: len(list((mirror2 / "x").glob("f*"))) == 40, daemon)
        (faults / "shipped").write_text("local2 x/block\n")    # local2's one worker, held
        (src / "x" / "block").write_text("block\n")
        poll("local2 busy", lambda: (faults / "shipped.reached").exists(), daemon)
        first = [f"x/f{i}" for i in range(1, 9)]               # 8: under alarm_deletes
        for p in first:
            (src / p).unlink()
        poll("8 deletes on local", lambda: not any((mirror / p).exists() for p in first), daemon)
        for i in range(9, 21):                                  # 12 more: the alarm fires
            (src / "x" / f"f{i}").unlink()
        poll("held", lambda: "deletes held" in _held(daemon), daemon)
        (faults / "shipped").unlink()                           # local2 goes on: its deletes held
        poll("block on local2", lambda: (mirror2 / "x" / "block").exists(), daemon)
        time.sleep(1)
        count, held, targets = _numbers(_held(daemon))
        assert count == 20 and targets == 2, _held(daemon)
        assert all((mirror2 / p).exists() for p in first)      # held there, gone from local
        daemon.cli("undelete", "--to-source", "--force", "--target", "local", *first)
        poll("restored", lambda: all((mirror / p).exists() for p in first), daemon)
        time.sleep(1)
        count2, held2, _ = _numbers(_held(daemon))
        assert count2 == count, (count, count2)                 # before: 28
        assert held2 == held - len(first), _held(daemon)        # their held deletes went
        for p in first:
            assert (mirror / p).read_text() == (mirror2 / p).read_text() == (src / p).read_text()
        # resume-deletes names what is held now (paths, on both targets), as status does
        out = daemon.cli("resume-deletes", "--source", "uploads").stdout
        assert f": {held2} held deletes on 2 targets go out now" in out, out
        wait_converged(src, target)
    finally:
        daemon.stop()
        target.close()
