"""A start-up tree removal (mirrord.interrupted) is a delete like any other: the
mass-change alarm counts it and `pause_on_alarm = yes` holds it; `keep_deleted` keeps what
it removes.

A maintenance script moved a whole directory out of the source while the daemon was down,
and the last run had been killed with an op below that directory in flight (a put; on a
target with directories, the mkdir of the new directory it is in). Its catch-up
deletes are counted (tests/e2e/test_alarm_catchup.py), but the tree removal queued at start
for the in-flight row was recorded before any count and went out while the catch-up still
walked: the hold came after that target had lost the directory. The real `mirrord run`
with test_crash_in_flight's fixtures; no reconcile pass at any point."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.e2e.test_crash_in_flight import (  # noqa: F401 - fixtures
    env,
    faults,
    hold,
    kill_held_first,
    restart_one_worker,
)
from tests.e2e.test_stopped_changes import start, write
from tests.reliability.conftest import poll

FILES = 12        # in the directory moved away; over THRESHOLD
THRESHOLD = 5


@pytest.fixture
def alarmed(env):  # noqa: F811
    text = env.cfg.read_text()
    env.cfg.write_text(text.replace("[source:uploads]\n", "[source:uploads]\nalarm_deletes = "
                                    f"{THRESHOLD}\npause_on_alarm = yes\n", 1))
    return env


@pytest.mark.parametrize("name", ["local", "s3"])
def test_a_start_up_tree_removal_is_held_by_the_alarm(alarmed, faults, name, tmp_path):  # noqa: F811
    e = alarmed
    write(e.src / "keep.jpg", b"kept")
    for i in range(FILES):
        write(e.src / "big" / f"f{i:02}.jpg", b"x" * (i + 1))
    start(e)
    e.assert_exact(by="the catch-up")
    hold(faults, name, "big/new", "big/new/*")
    write(e.src / "big" / "new" / "x.jpg", os.urandom(2000))
    kill_held_first(e, faults, name, "big/new", "big/new/x.jpg")
    os.rename(e.src / "big", tmp_path / "moved-away")   # the script, while mirrord is down
    restart_one_worker(e)

    def held():
        doc = e.daemon.status()["sources"]["uploads"]
        h = doc.get("deletes_held")
        return h is not None and h["waiting"] >= 1 and doc["alarm"] == "alarm"

    poll(held, timeout=60, what="the alarm fired and deletes held")
    write(e.src / "after.jpg", b"created after the start")   # a put is not held ...
    poll(lambda: e.targets[name].stat("after.jpg") is not None, timeout=60,
         what="a put after the start shipped")
    # ... and the moved directory is still whole on the target whose op was cut short
    left = {e.path for e in e.targets[name].list("big/") if "/new" not in e.path}
    assert left >= {f"big/f{i:02}.jpg" for i in range(FILES)}, sorted(left)
    assert e.log_text().count("mass-change alarm: too many") == 1
    e.daemon.cli("resume-deletes", "--source", "uploads")
    e.assert_exact(by="the catch-up")


@pytest.mark.parametrize("name", ["local", "host", "s3"])
def test_a_start_up_tree_removal_keeps_what_it_removes(env, faults, name, tmp_path):  # noqa: F811
    text = env.cfg.read_text()
    for t in ("local", "s3", "host"):
        text = text.replace(f"[target:{t}]\n", f"[target:{t}]\nkeep_deleted = 7d\n", 1)
    env.cfg.write_text(text)
    write(env.src / "keep.jpg", b"kept")
    for i in range(3):
        write(env.src / "big" / f"f{i}.jpg", b"y" * (i + 10))
    start(env)
    env.assert_exact(by="the catch-up")
    hold(faults, name, "big/new", "big/new/*")
    write(env.src / "big" / "new" / "x.jpg", os.urandom(2000))
    kill_held_first(env, faults, name, "big/new", "big/new/x.jpg")
    os.rename(env.src / "big", tmp_path / "moved-away")
    restart_one_worker(env)
    env.assert_exact(by="the catch-up")
    doc = json.loads(env.daemon.cli("trash", "--json", "--target", name).stdout)
    kept = {e["path"]: e["size"] for e in doc["targets"][name]["entries"]}
    assert {f"big/f{i}.jpg": i + 10 for i in range(3)}.items() <= kept.items(), kept


def test_a_reconcile_of_one_target_before_the_restart_leaves_the_others_to_undo(env, faults):  # noqa: F811
    """`mirrord reconcile --target s3` run with the daemon down after a kill -9 released
    every claim the killed run left: the next start found nothing in flight, and the
    directories a put cut short had made on the local mirror stayed there for good (now the
    mkdir of the top one, which holds the put back: test_crash_in_flight.kill_held_first)."""
    write(env.src / "keep.jpg", b"kept")
    start(env)
    env.assert_exact(by="the catch-up")
    hold(faults, "local", "up", "up/day/*")
    write(env.src / "up" / "day" / "photo.jpg", os.urandom(5000))
    kill_held_first(env, faults, "local", "up", "up/day/photo.jpg")
    shutil.rmtree(env.src / "up")
    env.daemon.cli("reconcile", "--target", "s3")     # no daemon running: it ships itself
    restart_one_worker(env)
    env.assert_exact(by="the catch-up")
