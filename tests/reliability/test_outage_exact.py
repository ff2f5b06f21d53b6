"""A target that is down while the source changes is exact once it is back, by the live
stream alone: no reconcile pass at any point (`[reconcile] every = off`, `at_start = no`).

The outage is real: the SeaweedFS server stopped, the mirror host's sshd stopped, the
local target's file system made immutable (chattr +i). While it lasts the source gets
creates, overwrites, deletes, file and directory renames, a directory removed with its
tree, a file turned into a directory, chmod and utime only. The journal holds all of it
for the target that is down (retried with backoff); once the target is back every row
is shipped and the target must equal the source exactly (tests/exactness.py), and a
reconcile dry run must find nothing. A second shape kills the daemon (SIGKILL) during
the outage and starts it again before the target is back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.reliability.conftest import Env, live_only_config, poll


def _config(tmp: Path, seaweedfs, sshd) -> Path:
    cfg = live_only_config(tmp, seaweedfs, sshd)
    cfg.write_text(cfg.read_text() + "at_start = no\n")   # the [reconcile] section is last
    return cfg


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def _populate(src: Path) -> None:
    for d in ("a", "b", "c", "gone", "ren"):
        for i in range(5):
            _write(src / d / f"f{i}.jpg", f"{d}{i}".encode() * 50)
    (src / "ren" / "sub").mkdir()
    _write(src / "ren" / "sub" / "deep.jpg", b"deep")
    (src / "gone" / "emptied").mkdir()
    _write(src / "to-dir", b"a file, later a directory")


def _change_during_outage(src: Path) -> None:
    for i in range(10):
        _write(src / "new" / f"n{i}.jpg", os.urandom(512))
    (src / "a" / "f0.jpg").write_bytes(b"overwritten while down")
    (src / "a" / "f1.jpg").unlink()
    os.rename(src / "a" / "f2.jpg", src / "b" / "moved.jpg")
    os.rename(src / "ren", src / "renamed")
    shutil.rmtree(src / "gone")
    (src / "to-dir").unlink()
    _write(src / "to-dir" / "inside.jpg", b"now a directory")
    os.chmod(src / "b" / "f0.jpg", 0o600)
    os.utime(src / "b" / "f1.jpg", ns=(1_600_000_000_000_000_001, 1_600_000_000_000_000_001))
    os.chmod(src / "c", 0o750)
    (src / "empty-new").mkdir()


def _backlog_with_error(env: Env, name: str) -> None:
    def check():
        t = env.daemon.status()["targets"][name]
        return t["pending"] > 0 and t["last_error"]
    poll(check, timeout=120, what=f"a backlog with an error on {name}")


class _Local:
    """The local target's tree made immutable (chattr +i: refused even to root, which
    the daemon may be and which mode bits do not stop), then writable again. A remount
    read-only is refused while the daemon holds files there open."""

    def __init__(self, root: Path):
        self.root = root

    def stop(self) -> None:
        subprocess.run(["chattr", "-R", "+i", str(self.root)], check=True)

    def start(self) -> None:
        subprocess.run(["chattr", "-R", "-i", str(self.root)], check=True)


def _heartbeat_failed(env: Env, name: str, before: int) -> None:
    """This run's daemon has seen the target down: a heartbeat could not be written (a
    target is retried at once when its heartbeat is written again: daemon_status.py)."""
    poll(lambda: _heartbeat_failures(env, name) > before, timeout=60,
         what=f"a heartbeat to {name} failing")


def _heartbeat_failures(env: Env, name: str) -> int:
    return sum(1 for line in env.log_text().splitlines()
               if "heartbeat not written" in line and f"target={name} " in line)


def _outage(env: Env, service, name: str, *, kill_during: bool) -> None:
    _populate(env.src)
    env.daemon.start()
    env.assert_exact(timeout=240)
    service.stop()
    try:
        failures = _heartbeat_failures(env, name)
        _change_during_outage(env.src)
        _backlog_with_error(env, name)
        _heartbeat_failed(env, name, failures)
        if kill_during:
            env.daemon.kill(signal.SIGKILL)
            (env.src / "c" / "f3.jpg").unlink()
            os.rename(env.src / "c" / "f4.jpg", env.src / "c" / "f4-renamed.jpg")
            failures = _heartbeat_failures(env, name)
            env.daemon.start()
            _backlog_with_error(env, name)
            _heartbeat_failed(env, name, failures)
    finally:
        service.start()
    env.assert_exact(timeout=240)


@pytest.mark.parametrize("kill_during", [False, True], ids=["live", "killed-during"])
def test_s3_down(tmp_path, seaweedfs, sshd, kill_during):
    env = Env(tmp_path, _config(tmp_path, seaweedfs, sshd))
    try:
        _outage(env, seaweedfs, "s3", kill_during=kill_during)
    finally:
        env.close()


@pytest.mark.parametrize("kill_during", [False, True], ids=["live", "killed-during"])
def test_sshd_down(tmp_path, seaweedfs, sshd, kill_during):
    env = Env(tmp_path, _config(tmp_path, seaweedfs, sshd))
    try:
        _outage(env, sshd, "host", kill_during=kill_during)
    finally:
        env.close()


@pytest.mark.parametrize("kill_during", [False, True], ids=["live", "killed-during"])
def test_local_target_read_only(tmp_path, seaweedfs, sshd, kill_during):
    env = Env(tmp_path, _config(tmp_path, seaweedfs, sshd))
    try:
        _outage(env, _Local(tmp_path / "mirror"), "local", kill_during=kill_during)
    finally:
        env.close()
