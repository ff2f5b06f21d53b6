"""`mirrord resume-deletes` and the mass-change alarm afterwards (found by a breaker).

- A second mass delete made right after a resume, while the alarm still counted over
  `alarm_deletes` within `alarm_window`, went out unheld: the alarm fires on its edge
  only, and it never fell back. A resume now re-arms it from 0 (mirrord.alarm.reset),
  and a live batch seen while its source is taken as held looks at the journal first,
  so a resume the daemon has not noticed yet re-arms it before that batch counts.
- A resume made while the daemon was stopped said the deletes "go out now", and the next
  start held them again: its comparison counted the same deletes as a new mass change.
  The comparison after a resume (the one the resume schedules, or the next start's)
  counts nothing: the operator let it go (Journal.take_resumed).
- The same comparison re-fired the alarm when the hold was one directory removal and
  the window had slid past it.
"""

from __future__ import annotations

import shutil
import time

from mirrord import config as config_mod
from mirrord import targets as target_registry
from tests.e2e.helpers import Mirrord, files_below, wait_converged
from tests.e2e.test_alarm_daemon import _config, poll


def _tree(src, name: str, dirs: int, files: int) -> None:
    for d in range(dirs):
        (src / name / f"d{d}").mkdir(parents=True)
        for i in range(files):
            (src / name / f"d{d}" / f"f{i}.jpg").write_bytes(b"x" * (d * files + i + 1))


def _files(root) -> list:
    return files_below(root)


def _run(tmp_path, cfg):
    daemon = Mirrord(cfg, tmp_path / "mirrord.log")
    target = target_registry.create(config_mod.load(cfg).targets["local"])
    target.open()
    return daemon, target


def test_a_second_mass_delete_right_after_a_resume_is_held(tmp_path):
    cfg = _config(tmp_path, pause=True)            # alarm_deletes 10, window 10m
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    _tree(src, "one", 1, 50)
    _tree(src, "two", 1, 50)
    daemon, target = _run(tmp_path, cfg)
    try:
        daemon.start()
        wait_converged(src, target)
        shutil.rmtree(src / "one")
        poll("the first rm -rf held", lambda: "deletes held" in daemon.cli("status").stdout, daemon)
        daemon.cli("resume-deletes", "--source", "uploads")
        poll("the first rm -rf shipped", lambda: not (mirror / "one").exists(), daemon)
        shutil.rmtree(src / "two")                 # the same mistake again, at once
        poll("the second rm -rf held", lambda: "deletes held" in daemon.cli("status").stdout,
             daemon)
        time.sleep(2)
        assert len(_files(mirror / "two")) >= 50 - 10, daemon.cli("status").stdout
    finally:
        daemon.stop()
        target.close()


def test_a_resume_while_stopped_is_not_held_again_by_the_next_start(tmp_path):
    cfg = _config(tmp_path, pause=True)
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    _tree(src, "batch", 10, 10)
    (src / "keep.txt").write_bytes(b"stays")
    daemon, target = _run(tmp_path, cfg)
    try:
        daemon.start()
        wait_converged(src, target)
        shutil.rmtree(src / "batch")
        poll("held", lambda: "deletes held" in daemon.cli("status").stdout, daemon)
        assert daemon.stop() == 0
        assert "go out now" in daemon.cli("resume-deletes", "--source", "uploads").stdout
        daemon.start()
        wait_converged(src, target)
        assert _files(mirror / "batch") == []
        assert "deletes held" not in daemon.cli("status").stdout
        assert "mass-change alarm: too many" not in daemon.log.read_text().split("msg=running")[-1]
    finally:
        daemon.stop()
        target.close()


def test_the_comparison_after_a_resume_does_not_fire_the_alarm_again(tmp_path):
    cfg = _config(tmp_path, pause=True)
    cfg.write_text(cfg.read_text().replace("alarm_window = 10m", "alarm_window = 2s"))
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    _tree(src, "tree", 10, 10)
    (src / "keep.txt").write_bytes(b"stays")   # a root left empty reads as lost (unmounted)
    daemon, target = _run(tmp_path, cfg)
    try:
        daemon.start()
        wait_converged(src, target)
        shutil.move(str(src / "tree"), str(tmp_path / "moved-out"))   # one directory removal
        poll("held", lambda: "deletes held" in daemon.cli("status").stdout, daemon)
        time.sleep(3)                              # the window slides past the firing
        daemon.cli("resume-deletes", "--source", "uploads")
        wait_converged(src, target)
        time.sleep(2)
        assert _files(mirror / "tree") == []
        assert "deletes held" not in daemon.cli("status").stdout
        assert daemon.log.read_text().count("mass-change alarm: too many") == 1
    finally:
        daemon.stop()
        target.close()
