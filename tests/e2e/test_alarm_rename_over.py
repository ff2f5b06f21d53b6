"""The mass-change alarm counts a rename over a mirrored file as the overwrite it is.

Ransomware and broken maintenance scripts often write the new bytes to a temp name and
rename it over the original (the same write-then-rename pattern PHP uploads use): on
every target that replaces the version mirrored there, exactly like a write in place.
Before, a move never reached the alarm's count, so encrypting a whole tree this way
never fired it (README: "More than alarm_deletes deletes or overwrites")."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord import config as config_mod
from mirrord import targets as target_registry
from tests.e2e.helpers import Mirrord, wait_converged
from tests.e2e.test_alarm_daemon import poll

FILES, THRESHOLD = 30, 10


@pytest.fixture
def setup(tmp_path: Path):
    (tmp_path / "src" / "batch").mkdir(parents=True)
    cfg = tmp_path / "mirrord.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = ./state
workers = 2
heartbeat_interval = 200ms

[source:uploads]
path = ./src
targets = local
alarm_deletes = {THRESHOLD}
alarm_window = 10m
pause_on_alarm = yes

[target:local]
type = local
path = ./mirror
keep_deleted = 1d
""")
    daemon = Mirrord(cfg, tmp_path / "mirrord.log")
    target = target_registry.create(config_mod.load(cfg).targets["local"])
    target.open()
    yield tmp_path / "src", daemon, target
    daemon.stop()
    target.close()


def test_renames_over_mirrored_files_fire_the_alarm_and_hold_deletes(setup):
    src, daemon, target = setup
    for i in range(FILES):
        (src / "batch" / f"f{i:02}.jpg").write_bytes(b"plain %d" % i)
    (src / "victim.jpg").write_bytes(b"deleted after the alarm")
    daemon.start()
    wait_converged(src, target)
    assert daemon.status()["sources"]["uploads"]["alarm"] == "ok"

    for i in range(FILES):        # "encrypt" each file: new bytes to a temp name, rename over
        tmp = src / "batch" / f".f{i:02}.jpg.tmp"
        tmp.write_bytes(b"encrypted %d" % i)
        tmp.rename(src / "batch" / f"f{i:02}.jpg")

    def firing():
        doc = daemon.status()["sources"]["uploads"]
        return doc if doc["alarm"] == "alarm" else None

    poll("alarm fired by renames over mirrored files", firing, daemon)
    # the overwrites themselves go on (each kept first); deletes are held (a temp name
    # shipped before its rename is removed only once resumed)
    poll("overwrites shipped", lambda: all(
        target.read(f"batch/f{i:02}.jpg") == b"encrypted %d" % i for i in range(FILES)), daemon)
    kept = {k.path for k in target.trash_list("batch")}
    assert kept == {f"batch/f{i:02}.jpg" for i in range(FILES)}
    (src / "victim.jpg").unlink()
    poll("delete held", lambda: (daemon.status()["sources"]["uploads"].get("deletes_held")
                                 or {}).get("waiting", 0) >= 1, daemon)
    assert target.read("victim.jpg") == b"deleted after the alarm"
    daemon.cli("resume-deletes", "--source", "uploads")
    wait_converged(src, target)
