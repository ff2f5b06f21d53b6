"""The heartbeat goes on while every worker of a target is busy (the real daemon, the
three real targets: local, S3 on SeaweedFS, rsync over sshd).

The heartbeat was a task on the target's worker pool, queued behind the batches there: a
target whose workers were all in long copies (2 rsync workers sending large files, or 2
local workers with fsync off) wrote no heartbeat until one ended, and the one it wrote
then carried the old time. The mirror host read that as a dead daemon: `mirrord
failover` and /ready said the file mirror's heartbeat was stale while the daemon was
alive and shipping. It has a thread of its own per target now (Shipper.submit_task).
Here each target has one worker, held by a fault point (mirrord.faults, `stored`: the put
done, its outcome not handed back) so the batch does not end. The rsync target's own
session slots are tests/targets/test_rsync_meta_session.py's."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.e2e.helpers import Mirrord, open_targets, wait_converged, write_config
from tests.e2e.test_alarm_daemon import poll

TARGETS = ("local", "s3", "host")


@pytest.fixture
def held_env(tmp_path, seaweedfs, sshd):
    """The three targets with one worker each and fault points on: (tmp, daemon, targets,
    the fault directory)."""
    cfg = write_config(tmp_path, seaweedfs, sshd, exclude="*.tmp")
    # one worker per target, whatever the type's default (config.worker_defaults)
    cfg.write_text(re.sub(r"(\[target:\w+\]\n)", r"\1workers = 1\n", cfg.read_text()))
    faults = tmp_path / "faults"
    faults.mkdir()
    daemon = Mirrord(cfg, tmp_path / "mirrord.log", env={"MIRRORD_FAULT_DIR": str(faults)})
    targets = open_targets(cfg)
    yield tmp_path, daemon, targets, faults
    (faults / "stored").unlink(missing_ok=True)   # a failed test lets its workers go
    daemon.stop()
    for t in targets.values():
        t.close()


def heartbeat(target) -> dict | None:
    raw = target.read_meta("heartbeat.json")
    return json.loads(raw) if raw else None


def made_after(targets: dict, t: float) -> dict | None:
    """Each target's heartbeat when every one was made after `t` (Unix seconds), else None."""
    beats = {name: heartbeat(target) for name, target in targets.items()}
    return beats if all(hb and hb["unix"] > t for hb in beats.values()) else None


def test_the_heartbeat_is_written_while_every_worker_is_held(held_env):
    tmp, daemon, targets, faults = held_env
    src = tmp / "src"
    assert set(targets) == set(TARGETS)
    daemon.start()
    poll("a heartbeat on every target",
         lambda: all(heartbeat(t) is not None for t in targets.values()), daemon)
    (faults / "stored").write_text("* held.jpg\n")
    (src / "held.jpg").write_bytes(b"held in its put\n" * 100)
    poll("every target's one worker held",
         lambda: (faults / "stored.reached").exists() and {
             line.split()[0] for line in (faults / "stored.reached").read_text().splitlines()
         } == set(TARGETS), daemon)
    held_at = time.time()
    # heartbeat_interval is 500 ms: several are due while the workers stay held
    fresh = poll("a heartbeat made after the workers were held, on every target",
                 lambda: made_after(targets, held_at + 1), daemon, timeout=30)
    for name, hb in fresh.items():
        assert hb["target"] == name
        assert hb["pending"] >= 1, hb   # the held put is still to land
    (faults / "stored").unlink()
    for target in targets.values():
        wait_converged(src, target, timeout=60)
    assert daemon.stop() == 0
