"""The state database's disk full while the source changes: every target exact afterwards
by the live stream and the catch-up alone, no reconcile pass at any point
(`[reconcile] every = off`, `at_start = no`).

While the journal cannot be written, changes and the workers' outcomes are held in
memory (mirrord.pipeline). Space freed, they are written and shipped; the daemon
stopped (SIGTERM) or killed (SIGKILL) while full loses what it held, and the catch-up
at the next start must find all of it: files, deletes, a rename, a directory removed,
a chmod, an empty directory, checked exactly (tests/exactness.py).
"""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from tests.reliability.conftest import Env, live_only_config, poll, tmpfs
from tests.reliability.test_state import _fill


def state_on(state, tmp_path, seaweedfs, sshd) -> Env:
    """The three-target Env, live only, `at_start = no`, its state_dir at `state` (a small
    tmpfs the caller mounted and fills)."""
    cfg = live_only_config(tmp_path, seaweedfs, sshd)
    cfg.write_text(cfg.read_text().replace("state_dir = ./state", f"state_dir = {state}")
                   + "at_start = no\n")
    return Env(tmp_path, cfg)


@pytest.mark.parametrize("recovery", ["space-freed", "sigterm-free-restart", "sigkill-free-restart"])
def test_state_disk_full(tmp_path, seaweedfs, sshd, recovery):
    state = tmp_path / "state"
    with tmpfs(state, "16m"):
        e = state_on(state, tmp_path, seaweedfs, sshd)
        try:
            for d in ("a", "gone", "ren"):
                for i in range(5):
                    (e.src / d).mkdir(exist_ok=True)
                    (e.src / d / f"f{i}").write_bytes(os.urandom(500))
            e.daemon.start()
            e.assert_exact(timeout=240, by="the catch-up")
            _fill(state)
            for i in range(100):
                (e.src / "new").mkdir(exist_ok=True)
                (e.src / "new" / f"n{i:03d}").write_bytes(os.urandom(700))
            (e.src / "a" / "f0").unlink()
            (e.src / "a" / "f1").write_bytes(b"overwritten while the journal is full")
            os.chmod(e.src / "a" / "f2", 0o600)
            os.rename(e.src / "ren", e.src / "renamed")
            shutil.rmtree(e.src / "gone")
            (e.src / "empty").mkdir()
            poll(lambda: "cannot write the journal" in e.log_text(), what="journal error logged")
            if recovery == "space-freed":
                (state / "filler").unlink()
            else:
                sig = signal.SIGTERM if recovery.startswith("sigterm") else signal.SIGKILL
                e.daemon.kill(sig)
                (state / "filler").unlink()
                e.daemon.start()
            e.assert_exact(timeout=240, by="the catch-up")
        finally:
            e.close()
