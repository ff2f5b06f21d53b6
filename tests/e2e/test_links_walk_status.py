"""While a write through a new hard link has not reached the file's other names on the
target, status never says in_sync (mirrord/target_state.py, `linking`).

Found by a fresh review (helper-136): `ln p1 p2; echo b >> p2`, then 2 s later `ln q1 q2;
echo b >> q2`. The first write asked for the walk that finds a file's other names and got
it at once; the second waited for the next one (LinkWalks: at most one per 30 s), and for
those ~28 s the target's q1 held the old bytes while `mirrord status` said `in_sync`,
nothing pending: what failover and /ready read. Both watcher backends, the real daemon."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import local_mirror, wait_converged


@pytest.fixture(params=["inotify", "fanotify"])
def setup(request, tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("p1", "q1"):
        (src / name).write_bytes(b"a\n")
    with local_mirror(tmp_path, f"watcher = {request.param}") as (daemon, target):
        yield src, daemon, target


def test_status_is_not_in_sync_while_a_linked_name_lags(setup):
    src, daemon, target = setup
    os.link(src / "p1", src / "p2")
    with open(src / "p2", "ab") as f:
        f.write(b"b\n")
    wait_converged(src, target)          # the first walk runs at once
    os.link(src / "q1", src / "q2")
    with open(src / "q2", "ab") as f:
        f.write(b"b\n")
    time.sleep(1.0)                      # the heartbeats after the write was read
    deadline = time.monotonic() + 90
    while target.read("q1") != b"a\nb\n":
        state = daemon.status()["targets"]["local"]
        assert state["state"] != "in_sync", (
            f"in_sync while q1 on the target is {target.read('q1')!r}: {state}")
        assert time.monotonic() < deadline, "q1 never reached the target"
        time.sleep(0.2)
    wait_converged(src, target)
